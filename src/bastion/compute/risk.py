"""``data risk`` over a partitioned dataset: k-anonymity and l-diversity computed exactly across partitions.

Each task counts its partition's equivalence classes (quasi-identifier tuples) and, with a sensitive column,
the distinct sensitive values per class. The client adds the counts and unites the value sets: ``k`` is the
smallest *merged* class, never the smallest per-partition k (a class split over two partitions counts once,
whole). A second pass, only when some class is below the target, lists the first violating rows by their row
index in the whole dataset (partitions in sorted order), as :func:`bastion.data.assess_risk` does for a file.
Memory on the client grows with the number of distinct classes, as in the single-file version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bastion.compute.datasets import list_partitions, location
from bastion.compute.interface import Executor
from bastion.compute.objects import local_input
from bastion.data import RiskReport
from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, Chunk, iter_chunks
from bastion.data.risk import (
    MAX_LISTED,
    ClassKey,
    check_risk_request,
    class_counts,
    classes_below,
    risk_report,
    rows_in_classes,
)
from bastion.errors import InvalidInput


@dataclass(frozen=True)
class RiskTask:
    root: str
    relpath: str
    fmt: str
    quasi_identifiers: tuple[str, ...]
    sensitive: str | None
    chunk_rows: int
    max_line_bytes: int
    small: frozenset[ClassKey] = frozenset()  # second pass: the classes below k


@dataclass(frozen=True)
class PartitionClasses:
    rows: int
    sizes: Counter[ClassKey]
    values: dict[ClassKey, set[str]]
    violating: tuple[int, ...] = ()  # second pass: first rows (partition-relative) in a small class


def _chunks(task: RiskTask) -> Iterator[Chunk]:
    with local_input(task.root, task.relpath) as p:
        yield from iter_chunks(
            p, fmt=task.fmt, chunk_rows=task.chunk_rows, max_line_bytes=task.max_line_bytes
        )


def count_classes(task: RiskTask) -> PartitionClasses:
    """Worker side, first pass: the partition's class sizes (and sensitive values per class)."""
    rows, sizes, values = class_counts(
        _chunks(task),
        quasi_identifiers=task.quasi_identifiers,
        sensitive=task.sensitive,
        fmt=task.fmt,
        where=f"{task.relpath}: ",
    )
    return PartitionClasses(rows=rows, sizes=sizes, values=values)


def find_violations(task: RiskTask) -> PartitionClasses:
    """Worker side, second pass: the first MAX_LISTED rows of the partition in a class below k."""
    found = rows_in_classes(_chunks(task), quasi_identifiers=task.quasi_identifiers, classes=task.small)
    return PartitionClasses(0, Counter(), {}, found)


def risk_dataset(
    *,
    path: str | Path,
    quasi_identifiers: list[str] | tuple[str, ...],
    executor: Executor,
    sensitive: str | None = None,
    k: int = 5,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> RiskReport:
    """k-anonymity and l-diversity of the whole partitioned dataset at ``path``, computed on ``executor``."""
    qis = check_risk_request(quasi_identifiers, sensitive, k)
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be positive")
    base = location(path)
    kind, files = list_partitions(base, fmt)
    tasks = [RiskTask(base, rel, kind, qis, sensitive, chunk_rows, max_line_bytes) for rel in files]
    parts = executor.map(count_classes, tasks).gather()
    sizes: Counter[ClassKey] = Counter()
    values: dict[ClassKey, set[str]] = {}
    for part in parts:
        sizes.update(part.sizes)
        for key, vals in part.values.items():
            values.setdefault(key, set()).update(vals)
    rows = sum(p.rows for p in parts)
    small = classes_below(sizes, k)
    violating: list[int] = []
    if rows and small:
        second = [
            RiskTask(base, rel, kind, qis, sensitive, chunk_rows, max_line_bytes, small=small)
            for rel in files
        ]
        offset = 0
        for part, found in zip(parts, executor.map(find_violations, second).gather(), strict=True):
            violating.extend(offset + i for i in found.violating)
            offset += part.rows
    return risk_report(
        path=base,
        rows=rows,
        quasi_identifiers=qis,
        sensitive=sensitive,
        k=k,
        sizes=sizes,
        values=values,
        violating=tuple(violating[:MAX_LISTED]),
    )


__all__ = ["PartitionClasses", "RiskTask", "count_classes", "find_violations", "risk_dataset"]
