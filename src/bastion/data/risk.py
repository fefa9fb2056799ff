"""Re-identification risk: k-anonymity (Sweeney 2002) and distinct l-diversity (Machanavajjhala et al. 2007).

Records are grouped by their quasi-identifier values (equivalence classes). ``k`` is the size of the smallest
class; distinct ``l`` is the smallest number of distinct sensitive values within a class. Streaming: one pass
counts classes (memory grows with the number of distinct classes, not rows); a second pass lists the first
records that break the target ``k`` by row index only (their values are never printed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.data.io import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_LINE_BYTES, detect_format, iter_chunks
from bastion.errors import InvalidInput

MAX_LISTED = 100


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
    qis = tuple(quasi_identifiers)
    if not qis:
        raise InvalidInput("name at least one quasi-identifier column")
    if len(set(qis)) != len(qis):
        raise InvalidInput("quasi-identifier columns repeat")
    if sensitive is not None and sensitive in qis:
        raise InvalidInput("the sensitive column cannot also be a quasi-identifier")
    if k < 1:
        raise InvalidInput("k must be at least 1")
    p = Path(path)
    kind = detect_format(p, fmt)
    if kind == "text":
        raise InvalidInput("risk needs a table (CSV, Parquet or JSON Lines)")
    sizes: Counter[tuple[str, ...]] = Counter()
    diverse: dict[tuple[str, ...], set[str]] = {}
    rows = 0
    needed = (*qis, sensitive) if sensitive else qis
    for chunk in iter_chunks(p, fmt=kind, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes):
        if chunk.n_rows == 0:
            continue
        missing = [c for c in needed if c not in chunk.data]
        if missing and kind != "jsonl":
            raise InvalidInput(f"no such column(s): {', '.join(missing)}")
        cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in qis]
        keys = list(zip(*cols, strict=True))
        sizes.update(keys)
        if sensitive:
            svals = chunk.data.get(sensitive, [""] * chunk.n_rows)
            for key, s in zip(keys, svals, strict=True):
                diverse.setdefault(key, set()).add(s)
        rows += chunk.n_rows
    if rows == 0:
        return RiskReport(str(p.resolve()), 0, qis, sensitive, k, 0, 0, 0, 0, None, ())
    small = {key for key, n in sizes.items() if n < k}
    violating: list[int] = []
    if small:
        for chunk in iter_chunks(p, fmt=kind, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes):
            cols = [chunk.data.get(c, [""] * chunk.n_rows) for c in qis]
            for i, key in enumerate(zip(*cols, strict=True)):
                if key in small:
                    violating.append(chunk.row_offset + i)
                    if len(violating) >= MAX_LISTED:
                        break
            if len(violating) >= MAX_LISTED:
                break
    return RiskReport(
        path=str(p.resolve()),
        rows=rows,
        quasi_identifiers=qis,
        sensitive=sensitive,
        target_k=k,
        k=min(sizes.values()),
        classes=len(sizes),
        classes_below_k=len(small),
        records_below_k=sum(sizes[key] for key in small),
        l_diversity=min(len(v) for v in diverse.values()) if sensitive else None,
        violating_rows=tuple(violating),
    )


__all__ = ["RiskReport", "assess_risk"]
