"""Streaming answers whose producer is closed as soon as the client hangs up (issue 17 H3).

Starlette runs a plain generator given to ``StreamingResponse`` in the thread pool and, when the client
disconnects, cancels the task that drives it, but never closes the generator: its ``finally`` (for a pull,
the ``registry:pull-end`` audit entry with the plaintext bytes handed out) ran only when the garbage
collector reached it, in practice when the server stopped. :func:`closing_stream` drives the generator the
same way and closes it (in a worker thread, shielded from the cancellation) whenever the iteration stops:
the end, an error, or the client's disconnect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import TypeVar

import anyio
from starlette.concurrency import iterate_in_threadpool

T = TypeVar("T")


async def closing_stream(gen: Generator[T, None, None]) -> AsyncIterator[T]:
    """``gen``'s items, produced in the thread pool; ``gen`` is closed however the iteration stops."""
    try:
        async for item in iterate_in_threadpool(gen):
            yield item
    finally:
        with anyio.CancelScope(shield=True):  # the client is gone (cancelled): still run its finally now
            await anyio.to_thread.run_sync(gen.close)


__all__ = ["closing_stream"]
