"""The Dask backend (``dask.distributed``): a scheduler address, or a private ``LocalCluster`` on 127.0.0.1.

Dask resubmits the tasks a worker held when that worker dies (up to ``distributed.scheduler.allowed-failures``
times), so a killed worker does not change a job's result; :meth:`DaskJob.gather` returns results in input
order. Tasks are pickled to the workers: connect only to a cluster you trust, and over TLS
(``tls://`` address, Dask security config) when it is not on loopback. The ``LocalCluster`` this module
starts listens on 127.0.0.1 only, with no dashboard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bastion.compute.interface import Progress
from bastion.errors import DependencyMissing, InvalidInput, ServiceError

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 20


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DependencyMissing(
            "the dask engine needs dask.distributed", hint="pip install 'bastion-ml[compute]'"
        ) from exc
    return distributed


class DaskJob:
    def __init__(self, client: Any, futures: list[Any]) -> None:
        self._client = client
        self._futures = futures

    def gather(self) -> list[Any]:
        distributed = _distributed()
        try:
            return list(self._client.gather(self._futures))
        except distributed.client.FutureCancelledError as exc:
            raise ServiceError("the job was cancelled") from exc
        except distributed.scheduler.KilledWorker as exc:
            raise ServiceError("a task failed on every worker it was retried on (KilledWorker)") from exc

    def progress(self) -> Progress:
        statuses = [f.status for f in self._futures]
        failed = sum(1 for s in statuses if s in ("error", "cancelled", "lost"))
        done = sum(1 for s in statuses if s == "finished") + failed
        return Progress(done=done, failed=failed, total=len(self._futures))

    def cancel(self) -> None:
        self._client.cancel(self._futures)


class DaskExecutor:
    """Connect to ``address`` (``tcp://host:8786``), or start a ``LocalCluster`` of ``workers`` processes.

    A private cluster gets one thread per worker (the work is CPU-bound Python) and binds to 127.0.0.1.
    """

    name = "dask"

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        memory_limit: str | None = None,
        timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        distributed = _distributed()
        self._cluster: Any = None
        if address is None:
            n = workers if workers is not None else 2
            if n < 1:
                raise InvalidInput("workers must be at least 1")
            try:
                self._cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    memory_limit=memory_limit or "auto",
                )
                self._client = distributed.Client(self._cluster, timeout=timeout_s)
            except (OSError, TimeoutError) as exc:
                self.close()
                raise ServiceError("could not start a local Dask cluster on 127.0.0.1") from exc
        else:
            if workers is not None:
                raise InvalidInput("--workers applies to a local cluster; a Dask cluster sizes itself")
            try:
                self._client = distributed.Client(address, timeout=timeout_s)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ServiceError(f"could not reach the Dask scheduler at {address}") from exc

    @property
    def client(self) -> Any:
        return self._client

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info(n_workers=-1)["workers"])

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> DaskJob:
        # pure=False: every call is a task of its own, never deduplicated with another job's by key.
        return DaskJob(self._client, self._client.map(fn, list(items), pure=False))

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["DaskExecutor", "DaskJob"]
