"""The Spark backend (PySpark): one RDD partition per item, results collected in input order.

For users whose data and cluster already live in Spark. ``cluster`` is a Spark master URL
(``spark://host:7077``, ``yarn``, ``k8s://…``); without one a private ``local[N,R]`` master runs in this
process's JVM, bound to 127.0.0.1 with the web UI off (N threads, each task retried up to R times).
Functions and items travel pickled (cloudpickle) to Spark's Python workers: the same rule as every backend,
no secret in clear in a task. A failed task's Python traceback is not copied into the error (it may hold
data): the error names the job and the exception class only.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bastion.compute.interface import Progress
from bastion.errors import DependencyMissing, InvalidInput, ServiceError

T = TypeVar("T")
R = TypeVar("R")

TASK_RETRIES = 3


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError as exc:
        raise DependencyMissing(
            "the spark engine needs pyspark", hint="pip install 'bastion-ml[spark]'"
        ) from exc
    return pyspark


class SparkJob:
    def __init__(self, sc: Any, fn: Callable[[Any], Any], items: list[Any]) -> None:
        self._sc = sc
        self._group = "bastion-" + secrets.token_hex(8)
        self._total = len(items)
        self._result: list[Any] | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, args=(fn, items), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[Any], Any], items: list[Any]) -> None:
        try:
            self._sc.setJobGroup(self._group, "bastion job", interruptOnCancel=True)
            if not items:
                self._result = []
                return
            self._result = self._sc.parallelize(items, len(items)).map(fn).collect()
        except BaseException as exc:  # handed to gather()
            self._error = exc

    def gather(self) -> list[Any]:
        self._thread.join()
        if self._cancelled:
            raise ServiceError("the job was cancelled")
        if self._error is not None:
            text = str(self._error)
            name = next((w.rstrip(":") for w in text.split() if w.endswith(("Error:", "Exception:"))), "")
            raise ServiceError(f"a Spark task failed ({name or type(self._error).__name__})") from None
        assert self._result is not None
        return list(self._result)

    def progress(self) -> Progress:
        done = self._total if not self._thread.is_alive() else 0
        failed = self._total if (self._error is not None or self._cancelled) and done else 0
        return Progress(done=done, failed=failed, total=self._total)

    def cancel(self) -> None:
        self._cancelled = True
        self._sc.cancelJobGroup(self._group)


class SparkExecutor:
    """A Spark session on ``master`` (default: ``local[workers,TASK_RETRIES]`` on 127.0.0.1)."""

    name = "spark"

    def __init__(self, *, master: str | None = None, workers: int | None = None) -> None:
        _pyspark()
        from pyspark.sql import SparkSession

        if master is not None and workers is not None:
            raise InvalidInput("--workers applies to a local master; a Spark cluster sizes itself")
        n = workers if workers is not None else 2
        if n < 1:
            raise InvalidInput("workers must be at least 1")
        builder = SparkSession.builder.appName("bastion").config("spark.ui.enabled", "false")
        if master is None:
            builder = (
                builder.master(f"local[{n},{TASK_RETRIES}]")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.driver.host", "127.0.0.1")
            )
        else:
            builder = builder.master(master)
        try:
            self._session: Any = builder.getOrCreate()
        except Exception as exc:
            raise ServiceError(f"could not start a Spark session on {master or 'a local master'}") from exc
        self._session.sparkContext.setLogLevel("ERROR")
        self._n = n

    @property
    def workers(self) -> int:
        return int(self._session.sparkContext.defaultParallelism) if self._session is not None else 0

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> SparkJob:
        if self._session is None:
            raise ServiceError("the spark executor is closed")
        return SparkJob(self._session.sparkContext, fn, list(items))

    def close(self) -> None:
        if getattr(self, "_session", None) is not None:
            self._session.stop()
            self._session = None

    def __enter__(self) -> SparkExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["SparkExecutor", "SparkJob"]
