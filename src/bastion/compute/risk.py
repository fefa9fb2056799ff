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
from dataclasses import dataclass
from pathlib import Path

from bastion.compute.datasets import list_partitions
from bastion.compute.interface import Executor
from bastion.data import RiskReport
from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, iter_chunks
from bastion.data.risk import MAX_LISTED
from bastion.errors import InvalidInput

ClassKey = tuple[str, ...]


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


def _chunks(task: RiskTask):  # type: ignore[no-untyped-def]
    root = Path(task.root)
    p = root / task.relpath if root.is_dir() else root
    return iter_chunks(p, fmt=task.fmt, chunk_rows=task.chunk_rows, max_line_bytes=task.max_line_bytes)


def count_classes(task: RiskTask) -> PartitionClasses:
    """Worker side, first pass: the partition's class sizes (and sensitive values per class)."""
    sizes: Counter[ClassKey] = Counter()
    values: dict[ClassKey, set[str]] = {}
    needed = (*task.quasi_identifiers, task.sensitive) if task.sensitive else task.quasi_identifiers
    rows = 0
    for chunk in _chunks(task):
        if chunk.n_rows == 0:
            continue
        missing = [c for c in needed if c not in chunk.data]
        if missing and task.fmt != "jsonl":
            raise InvalidInput(f"{task.relpath}: no such column(s): {', '.join(missing)}")
        cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in task.quasi_identifiers]
        keys = list(zip(*cols, strict=True))
        sizes.update(keys)
        if task.sensitive:
            svals = chunk.data.get(task.sensitive, [""] * chunk.n_rows)
            for key, s in zip(keys, svals, strict=True):
                values.setdefault(key, set()).add(s)
        rows += chunk.n_rows
    return PartitionClasses(rows=rows, sizes=sizes, values=values)


def find_violations(task: RiskTask) -> PartitionClasses:
    """Worker side, second pass: the first MAX_LISTED rows of the partition in a class below k."""
    found: list[int] = []
    for chunk in _chunks(task):
        cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in task.quasi_identifiers]
        for i, key in enumerate(zip(*cols, strict=True)):
            if key in task.small:
                found.append(chunk.row_offset + i)
                if len(found) >= MAX_LISTED:
                    return PartitionClasses(0, Counter(), {}, tuple(found))
    return PartitionClasses(0, Counter(), {}, tuple(found))


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
    qis = tuple(quasi_identifiers)
    if not qis:
        raise InvalidInput("name at least one quasi-identifier column")
    if len(set(qis)) != len(qis):
        raise InvalidInput("quasi-identifier columns repeat")
    if sensitive is not None and sensitive in qis:
        raise InvalidInput("the sensitive column cannot also be a quasi-identifier")
    if k < 1:
        raise InvalidInput("k must be at least 1")
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be positive")
    root = Path(path)
    kind, files = list_partitions(root, fmt)
    base = str(root.resolve())
    tasks = [RiskTask(base, rel, kind, qis, sensitive, chunk_rows, max_line_bytes) for rel in files]
    parts = executor.map(count_classes, tasks).gather()
    sizes: Counter[ClassKey] = Counter()
    values: dict[ClassKey, set[str]] = {}
    for part in parts:
        sizes.update(part.sizes)
        for key, vals in part.values.items():
            values.setdefault(key, set()).update(vals)
    rows = sum(p.rows for p in parts)
    if rows == 0:
        return RiskReport(base, 0, qis, sensitive, k, 0, 0, 0, 0, None, ())
    small = frozenset(key for key, n in sizes.items() if n < k)
    violating: list[int] = []
    if small:
        second = [
            RiskTask(base, rel, kind, qis, sensitive, chunk_rows, max_line_bytes, small=small)
            for rel in files
        ]
        offset = 0
        for part, found in zip(parts, executor.map(find_violations, second).gather(), strict=True):
            violating.extend(offset + i for i in found.violating)
            offset += part.rows
    return RiskReport(
        path=base,
        rows=rows,
        quasi_identifiers=qis,
        sensitive=sensitive,
        target_k=k,
        k=min(sizes.values()),
        classes=len(sizes),
        classes_below_k=len(small),
        records_below_k=sum(sizes[key] for key in small),
        l_diversity=min(len(v) for v in values.values()) if sensitive else None,
        violating_rows=tuple(violating[:MAX_LISTED]),
    )


__all__ = ["PartitionClasses", "RiskTask", "count_classes", "find_violations", "risk_dataset"]
