"""Data scanning over a partitioned dataset (a directory of Parquet, CSV or JSON Lines files).

One task per partition file.

Each task streams its partition and returns bounded per-column accumulators (counts, the first few
positions, shape counts; never raw values). The client merges them in partition order (sorted relative
paths) and classifies every column once, from the whole dataset's counts, so a column whose PII first
shows up in the last partition is labelled as such. Because results are gathered in input order and merged
on the client, the report is the same on every engine and for every number of workers.

Tasks carry a file path and reader settings only: no policy, no key, no data. Hidden files and files whose
name starts with ``_`` (``_SUCCESS``, ``_common_metadata``) are not partitions. Hive-style directory names
(``country=FR/``) are not read as columns. The root may be an object-store URL (``s3://bucket/prefix``,
:mod:`bastion.compute.objects`): each worker then reads its partition through its own credentials.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.compute.interface import Executor
from bastion.compute.objects import as_url, list_objects, local_input
from bastion.data import Policy, ScanReport
from bastion.data import entities as E
from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, detect_format
from bastion.errors import InvalidInput, NotFound

TABULAR = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class PartitionInfo:
    relpath: str
    digest: str
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.relpath, "digest": self.digest, "rows": self.rows, "bytes": self.bytes}


@dataclass(frozen=True)
class DatasetScan:
    """The merged report (``report.path`` is the dataset root) and the partitions it was built from."""

    report: ScanReport
    partitions: tuple[PartitionInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "partitions": [p.to_dict() for p in self.partitions]}


@dataclass(frozen=True)
class ScanTask:
    """What one worker needs to scan one partition (picklable; no secrets)."""

    root: str
    relpath: str
    fmt: str
    chunk_rows: int
    max_line_bytes: int
    use_presidio: bool


@dataclass(frozen=True)
class PartitionScan:
    info: PartitionInfo
    accumulators: tuple[Any, ...]  # bastion.data.scan._Acc, in first-seen column order


def _list_url(url: str, fmt: str | None) -> tuple[str, list[str]]:
    single, rels = list_objects(url)
    found: dict[str, list[str]] = {}
    for rel in rels:
        kind = detect_format(Path(rel), fmt)
        if kind not in TABULAR:
            raise InvalidInput(f"{rel} is not CSV, Parquet or JSON Lines")
        found.setdefault(kind, []).append(rel)
    if not found:
        raise InvalidInput(f"{url} holds no CSV, Parquet or JSON Lines partitions")
    if len(found) > 1 and not single:
        raise InvalidInput(f"{url} mixes formats ({', '.join(sorted(found))}); scan one format at a time")
    ((kind, files),) = found.items()
    return kind, sorted(files)


def list_partitions(root: Path | str, fmt: str | None = None) -> tuple[str, list[str]]:
    """The dataset's format and its partition files (relative POSIX paths, sorted); ``root`` may be a URL."""
    url = as_url(root)
    if url is not None:
        return _list_url(url, fmt)
    root = Path(root)
    if not root.exists():
        raise NotFound(f"no such dataset: {root}")
    if root.is_file():
        kind = detect_format(root, fmt)
        if kind not in TABULAR:
            raise InvalidInput(f"{root.name}: a dataset partition must be CSV, Parquet or JSON Lines")
        return kind, [root.name]
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in filenames:
            if name.startswith((".", "_")):
                continue
            full = Path(dirpath) / name
            kind = detect_format(full, fmt)
            if kind not in TABULAR:
                raise InvalidInput(f"{full.relative_to(root)} is not CSV, Parquet or JSON Lines")
            found.setdefault(kind, []).append(full.relative_to(root).as_posix())
    if not found:
        raise InvalidInput(f"{root} holds no CSV, Parquet or JSON Lines partitions")
    if len(found) > 1:
        raise InvalidInput(f"{root} mixes formats ({', '.join(sorted(found))}); scan one format at a time")
    ((kind, files),) = found.items()
    return kind, sorted(files)


def scan_partition(task: ScanTask) -> PartitionScan:
    """Worker side: stream one partition into per-column accumulators (the loop of ``scan_file``)."""
    from bastion.data.detectors import all_detectors, detect_values
    from bastion.data.io import iter_chunks, sha256_file
    from bastion.data.scan import _Acc

    detectors = all_detectors(use_presidio=task.use_presidio)
    accs: dict[str, _Acc] = {}
    rows = 0
    with local_input(task.root, task.relpath) as p:
        chunks = iter_chunks(p, fmt=task.fmt, chunk_rows=task.chunk_rows, max_line_bytes=task.max_line_bytes)
        for chunk in chunks:
            rows += chunk.n_rows
            for name in chunk.columns:
                acc = accs.setdefault(name, _Acc(name, rows=chunk.row_offset))
                acc.add(detect_values(chunk.data[name], column=name, detectors=detectors), chunk.row_offset)
                acc.add_shape(chunk.data[name])
            for name, acc in accs.items():
                if name not in chunk.data:
                    acc.rows += chunk.n_rows
        info = PartitionInfo(relpath=task.relpath, digest=sha256_file(p), rows=rows, bytes=p.stat().st_size)
    return PartitionScan(info=info, accumulators=tuple(accs.values()))


def location(path: str | Path) -> str:
    """A dataset root as tasks carry it: an object-store URL as given, a local path made absolute."""
    return as_url(path) or str(Path(path).resolve())


def _absorb(into: Any, part: Any, offset: int) -> None:
    from bastion.data.scan import MAX_POSITIONS

    into.rows += part.rows
    into.non_empty += part.non_empty
    into.chars += part.chars
    into.counts.update(part.counts)
    into.full.update(part.full)
    for entity, conf in part.conf.items():
        into.conf[entity] = max(into.conf.get(entity, 0.0), conf)
    for entity, source in part.source.items():
        into.source.setdefault(entity, source)
    for entity, shapes in part.shapes.items():
        into.shapes.setdefault(entity, Counter()).update(shapes)
    for entity, positions in part.positions.items():
        pos = into.positions.setdefault(entity, [])
        for row, start, end in positions[: max(MAX_POSITIONS - len(pos), 0)]:
            pos.append((row + offset, start, end))
    into.prose += part.prose
    into.structured += part.structured
    into.shape_seen += part.shape_seen


def merge_scans(
    parts: list[PartitionScan], *, root: Path | str, fmt: str, policy: Policy | None, use_presidio: bool
) -> DatasetScan:
    """Merge partition results in order and classify each column from the whole dataset."""
    from bastion.data.scan import _Acc, _engines

    merged: dict[str, _Acc] = {}
    total = 0
    for part in parts:
        present = set()
        for acc in part.accumulators:
            present.add(acc.name)
            into = merged.setdefault(acc.name, _Acc(acc.name, rows=total))  # earlier partitions lacked it
            _absorb(into, acc, total)
        for name, into in merged.items():
            if name not in present:
                into.rows += part.info.rows
        total += part.info.rows
    pol = policy or Policy()
    columns = tuple(a.report(pol, text=False) for a in merged.values())
    listing = "".join(f"{p.info.relpath}\t{p.info.digest}\n" for p in parts)
    report = ScanReport(
        path=location(root),
        format=fmt,
        digest="sha256:" + hashlib.sha256(listing.encode()).hexdigest(),
        rows=total,
        bytes=sum(p.info.bytes for p in parts),
        columns=columns,
        label=E.max_label([c.label for c in columns]) if columns else E.Label.internal,
        engines=_engines(use_presidio),
    )
    return DatasetScan(report=report, partitions=tuple(p.info for p in parts))


def scan_dataset(
    *,
    path: str | Path,
    executor: Executor | None = None,
    fmt: str | None = None,
    policy: Policy | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    use_presidio: bool = True,
) -> DatasetScan:
    """Scan every partition of ``path`` on ``executor`` (default: a local process pool) and merge.

    The dataset ``digest`` is the SHA-256 of the sorted ``relative-path TAB partition-digest`` lines.
    """
    root = location(path)
    kind, files = list_partitions(root, fmt)
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be positive")
    tasks = [
        ScanTask(
            root=root,
            relpath=rel,
            fmt=kind,
            chunk_rows=chunk_rows,
            max_line_bytes=max_line_bytes,
            use_presidio=use_presidio,
        )
        for rel in files
    ]
    if executor is None:
        from bastion.compute.local import LocalExecutor

        with LocalExecutor(workers=min(len(tasks), os.cpu_count() or 1)) as local:
            parts = local.map(scan_partition, tasks).gather()
    else:
        parts = executor.map(scan_partition, tasks).gather()
    return merge_scans(parts, root=root, fmt=kind, policy=policy, use_presidio=use_presidio)


__all__ = [
    "DatasetScan",
    "PartitionInfo",
    "PartitionScan",
    "ScanTask",
    "list_partitions",
    "location",
    "merge_scans",
    "scan_dataset",
    "scan_partition",
]
