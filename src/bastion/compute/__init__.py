"""Scale-out: run partitioned work on a local process pool (default) or a Dask cluster.

Entry points: :func:`make_executor` (``engine="local" | "dask" | "spark"``, optional ``cluster`` address),
:func:`scan_dataset`, :func:`protect_dataset` and :func:`risk_dataset` (``bastion data scan|protect|risk DIR
--engine ...``); a dataset may be a local directory or an object-store URL (``s3://bucket/prefix``,
:mod:`bastion.compute.objects`). Backends implement the :class:`~bastion.compute.interface.Executor` Protocol.
The Ray backend is not implemented (see ``RAY_NOT_BUILT``).
"""

from __future__ import annotations

from bastion.compute.datasets import DatasetScan, PartitionInfo, scan_dataset
from bastion.compute.interface import Executor, Job, Progress
from bastion.compute.keys import KeySource, ScopedKey
from bastion.compute.protect import DatasetProtect, protect_dataset
from bastion.compute.risk import risk_dataset
from bastion.errors import InvalidInput

ENGINES: tuple[str, ...] = ("local", "dask", "spark")
RAY_NOT_BUILT = (
    "the ray engine is not implemented: ray 2.60.0 (the newest release, re-checked 2026-12-05) still "
    "binds its GCS, raylet and workers to every interface with a 127.0.0.1 node address and took 36-49 s "
    "to start here (see docs/benchmarks.md, Scale-out)"
)


def make_executor(
    *, engine: str = "local", cluster: str | None = None, workers: int | None = None
) -> Executor:
    """An executor for ``engine``; ``cluster`` is a Dask scheduler address (``tcp://host:8786``) or a Spark
    master URL (``spark://host:7077``)."""
    if engine == "local":
        if cluster is not None:
            raise InvalidInput("--cluster needs a distributed engine (--engine dask or spark)")
        from bastion.compute.local import LocalExecutor

        return LocalExecutor(workers=workers)
    if engine == "dask":
        from bastion.compute.dask import DaskExecutor

        return DaskExecutor(address=cluster, workers=workers)
    if engine == "spark":
        from bastion.compute.spark import SparkExecutor

        return SparkExecutor(master=cluster, workers=workers)
    if engine == "ray":
        raise InvalidInput(f"{RAY_NOT_BUILT}; available: {', '.join(ENGINES)}")
    raise InvalidInput(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")


__all__ = [
    "ENGINES",
    "DatasetProtect",
    "DatasetScan",
    "Executor",
    "Job",
    "KeySource",
    "PartitionInfo",
    "Progress",
    "ScopedKey",
    "make_executor",
    "protect_dataset",
    "risk_dataset",
    "scan_dataset",
]
