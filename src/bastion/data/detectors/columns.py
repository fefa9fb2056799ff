"""Detection over one column chunk: a joined text, one pass per detector, sample-and-confirm, column context.

A column chunk is joined into one string (values separated by NUL, which no pattern matches) and every
detector runs one ``finditer`` over it; match positions map back to row indices with a binary search over
the value offsets. Python work is spent only on candidate matches (validators: Luhn, IBAN mod-97, SSN area
rules, IP parsing, calendar dates, name lists, entropy), never per cell.

Sample-and-confirm: on a long chunk the first ``sample`` values are scanned with every detector; when one
entity covers at least 90 % of the sampled values (a typed column such as ``email``), the rest of the chunk is
confirmed with only the detectors that fired in the sample. Free-text and mixed columns always get every
detector.

Column context: column names (``dob``, ``ssn``, ``first_name``, ``zip``, ``password`` …) and value
distributions (values that look like personal names) add column-level detections that patterns alone miss.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bastion.data import entities as E
from bastion.data._national import weak_id_column
from bastion.data.detectors._common import SEP
from bastion.data.detectors.context import (
    ID_SHAPE,
    PERSON_HINT,
    column_hints,
    drop_stray_names,
    looks_like_names,
    masked_shape,
)
from bastion.data.detectors.engine import birth_context, finalize, run_all
from bastion.data.detectors.interface import Detector, Span


@dataclass(frozen=True)
class EntityHits:
    """Where one entity was found in a column chunk: unique row indices, never the values."""

    entity: str
    rows: np.ndarray
    full: int  # rows where the entity is (nearly) the whole value
    confidence: float
    source: str
    shapes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnHits:
    """Detections in one chunk of one column; ``span_*`` arrays give (row, start, end, entity) per value."""

    column: str | None
    n_values: int
    n_non_empty: int
    total_chars: int
    entities: dict[str, EntityHits] = field(default_factory=dict)
    span_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_entities: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def spans_by_row(self) -> dict[int, list[tuple[int, int, str]]]:
        """(start, end, entity) within each value, keyed by row; whole-cell detections span the value."""
        out: dict[int, list[tuple[int, int, str]]] = {}
        for r, a, b, e in zip(
            self.span_rows.tolist(),
            self.span_starts.tolist(),
            self.span_ends.tolist(),
            self.span_entities.tolist(),
            strict=True,
        ):
            out.setdefault(r, []).append((a, b, e))
        return out


def _offsets(values: Sequence[str]) -> np.ndarray:
    lengths = np.fromiter((len(v) + 1 for v in values), dtype=np.int64, count=len(values))
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def detect_values(
    values: Sequence[str],
    *,
    column: str | None = None,
    sample: int = 128,
    detectors: Sequence[Detector] | None = None,
) -> ColumnHits:
    """Detect entities in one column chunk (a sequence of strings; empty string = missing)."""
    if detectors is None:
        from bastion.data.detectors.registry import all_detectors

        detectors = all_detectors()
    dets = tuple(detectors)
    n = len(values)
    joined = SEP.join(values)
    offsets = _offsets(values)
    non_empty = n - sum(1 for v in values if not v) if n else 0

    active = dets
    sampled: list[Span] = []  # the sample's findings, kept: its rows are not scanned twice
    rest_from = 0
    if n > 2 * sample:
        sample_text = joined[: int(offsets[sample]) - 1]
        sample_spans: list[Span] = []
        owner: dict[tuple[int, int, str], int] = {}
        for i, found_here in enumerate(run_all(dets, sample_text)):
            owner.update(((sp.start, sp.end, sp.entity), i) for sp in found_here)
            sample_spans.extend(found_here)
        sample_spans = finalize(sample_spans, sample_text)
        full_by_entity: Counter[str] = Counter()
        for sp in sample_spans:
            row = bisect.bisect_right(offsets, sp.start, 0, sample + 1) - 1
            if (sp.end - sp.start) >= 0.8 * (int(offsets[row + 1]) - int(offsets[row]) - 1):
                full_by_entity[sp.entity] += 1
        sample_non_empty = sum(1 for v in values[:sample] if v)
        typed = bool(full_by_entity) and max(full_by_entity.values()) >= 0.9 * max(sample_non_empty, 1)
        if not typed and sample_non_empty:
            # A column whose name says it holds a sensitive entity and whose values have that shape is
            # decided (it is protected whole); the rest needs only the detectors that fired in the sample.
            for entity, shape in column_hints(column):
                if entity in E.PII_ENTITIES or entity in E.SECRET_ENTITIES:
                    fits = sum(1 for v in values[:sample] if v and shape.fullmatch(v))
                    typed = typed or fits >= 0.8 * sample_non_empty
        if typed:
            # A typed column: confirm the rest with the detectors whose findings survived in the sample.
            winners = {owner[(sp.start, sp.end, sp.entity)] for sp in sample_spans}
            active = tuple(d for i, d in enumerate(dets) if i in winners)
        sampled = sample_spans
        rest_from = int(offsets[sample])

    rest = joined[rest_from:] if rest_from else joined
    found: list[Span] = [sp for per_det in run_all(active, rest) for sp in per_det]
    spans = finalize(found, rest)
    if rest_from:
        spans = sampled + [s._replace(start=s.start + rest_from, end=s.end + rest_from) for s in spans]

    hints = column_hints(column)
    hinted = {entity for entity, _ in hints}
    spans = drop_stray_names(spans, values, hinted, non_empty)
    if any(s.entity == E.DATE for s in spans):
        if E.DATE_OF_BIRTH in hinted:
            spans = [s._replace(entity=E.DATE_OF_BIRTH) if s.entity == E.DATE else s for s in spans]
        else:
            spans = birth_context(joined, spans)

    m = len(spans)
    starts = np.fromiter((s.start for s in spans), dtype=np.int64, count=m)
    ends = np.fromiter((s.end for s in spans), dtype=np.int64, count=m)
    ent_names = sorted({s.entity for s in spans})
    ent_idx = {e: i for i, e in enumerate(ent_names)}
    codes = np.fromiter((ent_idx[s.entity] for s in spans), dtype=np.int64, count=m)
    rows = np.searchsorted(offsets, starts, side="right") - 1
    base = offsets[rows]
    vlen = offsets[rows + 1] - base - 1
    is_full = (ends - starts) >= 0.8 * vlen
    per: dict[str, np.ndarray] = {}
    full: Counter[str] = Counter()
    conf: dict[str, float] = {}
    src: dict[str, str] = {}
    shapes: dict[str, Counter[str]] = {}
    for e, i in ent_idx.items():
        sel = codes == i
        per[e] = rows[sel]
        full[e] = int(np.count_nonzero(is_full[sel]))
        first = np.flatnonzero(sel)[:50].tolist()
        conf[e] = max(spans[k].confidence for k in first)
        src[e] = spans[first[0]].source
        shapes[e] = Counter(masked_shape(joined[spans[k].start : spans[k].end]) for k in first)
    span_arrays = [
        (rows, starts - base, ends - base, np.asarray(ent_names, dtype=object)[codes] if m else codes)
    ]

    # Column context: name hints confirmed by value shape, and name-like value distributions.
    context: list[tuple[str, re.Pattern[str]]] = list(hints)
    if E.PERSON not in hinted and looks_like_names(values[:sample]):
        context.append((E.PERSON, PERSON_HINT[2]))
    if E.NATIONAL_ID not in hinted and E.NATIONAL_ID not in ent_idx:
        weak = weak_id_column(values[:sample])
        if weak is not None:
            context.append((E.NATIONAL_ID, ID_SHAPE))
    for entity, shape in context:
        # Already-protected cells (tokens, keyed hashes) are not raw values.
        anchored = re.compile(r"(?:(?<=\x00)|^)(?!tok_|hmac_)(?:" + shape.pattern + r")(?=\x00|$)")
        found_at = [mt.start() for mt in anchored.finditer(joined) if mt.end() > mt.start()]
        if not found_at:
            continue
        hint_rows = np.unique(
            np.searchsorted(offsets, np.asarray(found_at, dtype=np.int64), side="right") - 1
        )
        # Cells already claimed by a pattern (e.g. an email in a 'contact_name') stay as they are.
        claimed = np.unique(np.concatenate([rows, per.get(entity, np.zeros(0, dtype=np.int64))]))
        new = np.setdiff1d(hint_rows, claimed, assume_unique=True)
        if not len(new) and entity in per:
            continue
        per[entity] = np.concatenate([per.get(entity, np.zeros(0, dtype=np.int64)), new])
        full[entity] += len(new)
        conf[entity] = max(conf.get(entity, 0.0), 0.8 if entity in hinted else 0.7)
        src.setdefault(entity, "column-name" if entity in hinted else "value-distribution")
        sh = shapes.setdefault(entity, Counter())
        for r in new[:50].tolist():
            sh[masked_shape(values[r])] += 1
        lens = np.fromiter((len(values[r]) for r in new.tolist()), dtype=np.int64, count=len(new))
        span_arrays.append(
            (new, np.zeros(len(new), dtype=np.int64), lens, np.full(len(new), entity, dtype=object))
        )

    result: dict[str, EntityHits] = {}
    for entity, rws in per.items():
        uniq = np.unique(rws)
        result[entity] = EntityHits(
            entity=entity,
            rows=uniq,
            full=min(full[entity], len(uniq)),
            confidence=round(conf[entity], 3),
            source=src[entity],
            shapes=tuple(s for s, _ in shapes.get(entity, Counter()).most_common(3)),
        )
    return ColumnHits(
        column=column,
        n_values=n,
        n_non_empty=non_empty,
        total_chars=len(joined) - max(n - 1, 0),
        entities=result,
        span_rows=np.concatenate([a[0] for a in span_arrays]) if span_arrays else np.zeros(0, dtype=np.int64),
        span_starts=np.concatenate([a[1] for a in span_arrays])
        if span_arrays
        else np.zeros(0, dtype=np.int64),
        span_ends=np.concatenate([a[2] for a in span_arrays]) if span_arrays else np.zeros(0, dtype=np.int64),
        span_entities=np.concatenate([a[3] for a in span_arrays])
        if span_arrays
        else np.zeros(0, dtype=object),
    )


__all__ = ["ColumnHits", "EntityHits", "detect_values"]
