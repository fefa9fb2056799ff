"""Re-identification risk: k-anonymity (Sweeney 2002) and distinct l-diversity (Machanavajjhala et al. 2007).

Records are grouped by their quasi-identifier values (equivalence classes). ``k`` is the size of the smallest
class; distinct ``l`` is the smallest number of distinct sensitive values within a class. Streaming: one pass
counts classes (memory grows with the number of distinct classes, not rows); a second pass lists the first
records that break the target ``k`` by row index only (their values are never printed).
The passes are public (:func:`class_counts`, :func:`rows_in_classes`, :func:`risk_report`) so that
:mod:`bastion.compute.risk` runs the same core per partition and merges the counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, Chunk, detect_format, iter_chunks
from bastion.errors import InvalidInput

MAX_LISTED = 100
ClassKey = tuple[str, ...]  # one equivalence class: its quasi-identifier values


@dataclass(frozen=True)
class RiskReport:
    path: str
    rows: int
    quasi_identifiers: tuple[str, ...]
    sensitive: str | None
    target_k: int
    k: int  # smallest equivalence class (0 for an empty file)
    classes: int
    classes_below_k: int
    records_below_k: int
    l_diversity: int | None  # smallest distinct sensitive values per class
    violating_rows: tuple[int, ...]  # the first MAX_LISTED row indices in classes smaller than target_k

    @property
    def passes(self) -> bool:
        return self.rows == 0 or self.k >= self.target_k

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": self.sensitive,
            "target_k": self.target_k,
            "k": self.k,
            "passes": self.passes,
            "classes": self.classes,
            "classes_below_k": self.classes_below_k,
            "records_below_k": self.records_below_k,
            "l_diversity": self.l_diversity,
            "violating_rows": list(self.violating_rows),
        }


def check_risk_request(
    quasi_identifiers: list[str] | tuple[str, ...], sensitive: str | None, k: int
) -> tuple[str, ...]:
    """The quasi-identifiers as a tuple, or InvalidInput for a request no table can answer."""
    qis = tuple(quasi_identifiers)
    if not qis:
        raise InvalidInput("name at least one quasi-identifier column")
    if len(set(qis)) != len(qis):
        raise InvalidInput("quasi-identifier columns repeat")
    if sensitive is not None and sensitive in qis:
        raise InvalidInput("the sensitive column cannot also be a quasi-identifier")
    if k < 1:
        raise InvalidInput("k must be at least 1")
    return qis


def class_counts(
    chunks: Iterable[Chunk],
    *,
    quasi_identifiers: tuple[str, ...],
    sensitive: str | None,
    fmt: str,
    where: str = "",
) -> tuple[int, Counter[ClassKey], dict[ClassKey, set[str]]]:
    """First pass: rows, the size of each equivalence class and (with ``sensitive``) its distinct values.

    A missing column is InvalidInput (prefixed by ``where``), except in JSON Lines, where it reads as "".
    """
    sizes: Counter[ClassKey] = Counter()
    values: dict[ClassKey, set[str]] = {}
    needed = (*quasi_identifiers, sensitive) if sensitive else quasi_identifiers
    rows = 0
    for chunk in chunks:
        if chunk.n_rows == 0:
            continue
        missing = [c for c in needed if c not in chunk.data]
        if missing and fmt != "jsonl":
            raise InvalidInput(f"{where}no such column(s): {', '.join(missing)}")
        cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in quasi_identifiers]
        keys = list(zip(*cols, strict=True))
        sizes.update(keys)
        if sensitive:
            svals = chunk.data.get(sensitive, [""] * chunk.n_rows)
            for key, s in zip(keys, svals, strict=True):
                values.setdefault(key, set()).add(s)
        rows += chunk.n_rows
    return rows, sizes, values


def rows_in_classes(
    chunks: Iterable[Chunk], *, quasi_identifiers: tuple[str, ...], classes: AbstractSet[ClassKey]
) -> tuple[int, ...]:
    """Second pass: the first :data:`MAX_LISTED` row indices whose class is in ``classes``."""
    found: list[int] = []
    for chunk in chunks:
        cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in quasi_identifiers]
        for i, key in enumerate(zip(*cols, strict=True)):
            if key in classes:
                found.append(chunk.row_offset + i)
                if len(found) >= MAX_LISTED:
                    return tuple(found)
    return tuple(found)


def classes_below(sizes: Counter[ClassKey], k: int) -> frozenset[ClassKey]:
    """The equivalence classes smaller than the target ``k``."""
    return frozenset(key for key, n in sizes.items() if n < k)


def risk_report(
    *,
    path: str,
    rows: int,
    quasi_identifiers: tuple[str, ...],
    sensitive: str | None,
    k: int,
    sizes: Counter[ClassKey],
    values: dict[ClassKey, set[str]],
    violating: tuple[int, ...] = (),
) -> RiskReport:
    """The report from the (merged) class counts of a whole table."""
    if rows == 0:
        return RiskReport(path, 0, quasi_identifiers, sensitive, k, 0, 0, 0, 0, None, ())
    small = classes_below(sizes, k)
    return RiskReport(
        path=path,
        rows=rows,
        quasi_identifiers=quasi_identifiers,
        sensitive=sensitive,
        target_k=k,
        k=min(sizes.values()),
        classes=len(sizes),
        classes_below_k=len(small),
        records_below_k=sum(sizes[key] for key in small),
        l_diversity=min(len(v) for v in values.values()) if sensitive else None,
        violating_rows=violating[:MAX_LISTED],
    )


def assess_risk(
    *,
    path: str | Path,
    quasi_identifiers: list[str] | tuple[str, ...],
    sensitive: str | None = None,
    k: int = 5,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> RiskReport:
    """k-anonymity and l-diversity of ``path`` over ``quasi_identifiers``."""
    qis = check_risk_request(quasi_identifiers, sensitive, k)
    p = Path(path)
    kind = detect_format(p, fmt)
    if kind == "text":
        raise InvalidInput("risk needs a table (CSV, Parquet or JSON Lines)")

    def chunks() -> Iterator[Chunk]:
        return iter_chunks(p, fmt=kind, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)

    rows, sizes, values = class_counts(chunks(), quasi_identifiers=qis, sensitive=sensitive, fmt=kind)
    small = classes_below(sizes, k)
    violating = rows_in_classes(chunks(), quasi_identifiers=qis, classes=small) if small else ()
    return risk_report(
        path=str(p.resolve()),
        rows=rows,
        quasi_identifiers=qis,
        sensitive=sensitive,
        k=k,
        sizes=sizes,
        values=values,
        violating=violating,
    )


__all__ = [
    "ClassKey",
    "RiskReport",
    "assess_risk",
    "check_risk_request",
    "class_counts",
    "classes_below",
    "risk_report",
    "rows_in_classes",
]
