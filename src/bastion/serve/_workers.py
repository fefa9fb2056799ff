"""``--workers N``: hand the passphrase and the serve options to uvicorn's worker processes without the
environment.

uvicorn starts workers with multiprocessing's *spawn*: the parent pickles the worker's :class:`uvicorn.Config`
and writes it to a pipe the child reads at start. :class:`WorkerConfig` carries the secret in that pickle (so
it never appears in ``/proc/<pid>/environ`` or the command line of any process) and, in the child, moves it
into this module just before uvicorn calls the app factory, which takes it exactly once.
"""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

_lock = threading.Lock()
_handoff: dict[str, str] = {}


class WorkerConfig(uvicorn.Config):  # type: ignore[misc]
    """A uvicorn Config that brings ``bastion_secret`` and ``bastion_spec`` along to each worker."""

    def __init__(self, *args: Any, secret: str, spec: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bastion_secret = secret
        self.bastion_spec = spec

    def load(self) -> None:
        with _lock:
            _handoff["secret"] = self.bastion_secret
            _handoff["spec"] = self.bastion_spec
        super().load()


def take() -> tuple[str, str]:
    """The (passphrase, options JSON) handed to this worker; a second call finds nothing."""
    with _lock:
        try:
            return _handoff.pop("secret"), _handoff.pop("spec")
        except KeyError:
            raise RuntimeError("no serve options were handed to this worker") from None


__all__ = ["WorkerConfig", "take"]
