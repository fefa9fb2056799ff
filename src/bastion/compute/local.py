"""The default backend: a local process pool (``concurrent.futures`` with the ``spawn`` start method).

Workers are fresh interpreters (``spawn``), so nothing the parent holds in memory (a key ring, an open
vault) leaks into them by fork; what a task needs travels in its pickled arguments.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from bastion.compute.interface import Progress
from bastion.errors import InvalidInput, ServiceError

T = TypeVar("T")
R = TypeVar("R")


class LocalJob:
    def __init__(self, futures: list[Future[Any]]) -> None:
        self._futures = futures

    def gather(self) -> list[Any]:
        wait(self._futures)
        out = []
        for f in self._futures:
            try:
                out.append(f.result())
            except CancelledError as exc:
                raise ServiceError("the job was cancelled") from exc
            except BrokenProcessPool as exc:
                raise ServiceError("a local worker process died; the job did not finish") from exc
        return out

    def progress(self) -> Progress:
        done = [f for f in self._futures if f.done()]
        failed = sum(1 for f in done if f.cancelled() or f.exception() is not None)
        return Progress(done=len(done), failed=failed, total=len(self._futures))

    def cancel(self) -> None:
        for f in self._futures:
            f.cancel()


class LocalExecutor:
    """``workers`` processes on this machine (default: the CPU count)."""

    name = "local"

    def __init__(self, *, workers: int | None = None) -> None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise InvalidInput("workers must be at least 1")
        self._workers = n
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=n, mp_context=multiprocessing.get_context("spawn")
        )

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> LocalJob:
        if self._pool is None:
            raise ServiceError("the local executor is closed")
        try:
            return LocalJob([self._pool.submit(fn, item) for item in items])
        except BrokenProcessPool as exc:  # a worker died in an earlier job: the pool takes no more work
            raise ServiceError("a local worker process died; start a new job") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["LocalExecutor", "LocalJob"]
