"""The executor seam: map a function over partitions on a local process pool or a distributed engine.

A job is one :meth:`Executor.map` call: one task per item (a partition, a row group, a model file).
:meth:`Job.gather` returns the results in input order whatever order the tasks finished in, so a merge
over them is the same on every engine and for every number of workers. Functions and items must be
picklable module-level objects (they travel to worker processes), and must never carry secrets in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """How far a job is: tasks finished (successfully or not) out of ``total``."""

    done: int
    failed: int
    total: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


@runtime_checkable
class Job(Protocol[R]):
    """A running map: wait for it, watch it or cancel it."""

    def gather(self) -> list[R]:
        """Block until every task is done; results in input order. The first task error is raised."""
        ...

    def progress(self) -> Progress: ...

    def cancel(self) -> None:
        """Cancel the tasks not yet finished; a later :meth:`gather` raises ``Cancelled``."""
        ...


@runtime_checkable
class Executor(Protocol):
    """A pool of workers. Use as a context manager; :meth:`close` releases every worker it started."""

    name: str

    @property
    def workers(self) -> int: ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Job[R]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: Any) -> None: ...


__all__ = ["Executor", "Job", "Progress"]
