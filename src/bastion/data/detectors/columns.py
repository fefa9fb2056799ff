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
from bastion.data.detectors._jsoncells import flat_object, looks_json
from bastion.data.detectors._normalise import Normalised, concealed_runs, normalise, suspect
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


_EMPTY_I = np.zeros(0, dtype=np.int64)


def detect_values(
    values: Sequence[str],
    *,
    column: str | None = None,
    sample: int = 128,
    detectors: Sequence[Detector] | None = None,
) -> ColumnHits:
    """Detect entities in one column chunk (a sequence of strings; empty string = missing).

    Memoised per chunk: each distinct value is scanned once (a cell's findings depend on the cell alone),
    and its findings are copied to every row that holds it. Counts, full-cell counts and span arrays are
    per row, as if every row had been scanned.
    """
    if detectors is None:
        from bastion.data.detectors.registry import all_detectors

        detectors = all_detectors()
    n = len(values)
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=n)
    uniq = list(index)
    non_empty = n - (int(np.count_nonzero(inverse == index[""])) if "" in index else 0)
    found = _detect_unique(uniq, values, column=column, sample=sample, dets=tuple(detectors))
    u_rows, starts, ends, ents, is_full = found.arrays()

    # Copy each distinct value's findings to the rows holding it (rows in order, spans in order per row).
    counts = np.bincount(inverse, minlength=len(uniq))
    order = np.argsort(inverse, kind="stable")
    first = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    reps = counts[u_rows]
    total = int(reps.sum())
    idx = np.repeat(np.arange(len(u_rows)), reps)
    within = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
    rows = order[np.repeat(first[u_rows], reps) + within] if total else _EMPTY_I
    starts, ends, ents, is_full = starts[idx], ends[idx], ents[idx], is_full[idx]
    sort = np.lexsort((starts, rows))
    rows, starts, ends, ents, is_full = rows[sort], starts[sort], ends[sort], ents[sort], is_full[sort]

    result: dict[str, EntityHits] = {}
    for entity in found.conf:
        sel = ents == entity
        uniq_rows = np.unique(rows[sel])
        result[entity] = EntityHits(
            entity=entity,
            rows=uniq_rows,
            full=min(int(np.count_nonzero(is_full[sel])), len(uniq_rows)),
            confidence=round(found.conf[entity], 3),
            source=found.src[entity],
            shapes=tuple(s for s, _ in found.shapes.get(entity, Counter()).most_common(3)),
        )
    return ColumnHits(
        column=column,
        n_values=n,
        n_non_empty=non_empty,
        total_chars=sum(map(len, values)),
        entities=result,
        span_rows=rows,
        span_starts=starts,
        span_ends=ends,
        span_entities=ents,
    )


@dataclass
class _Found:
    """Findings over the distinct values of a chunk: span arrays (row = index of the distinct value)."""

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )
    conf: dict[str, float] = field(default_factory=dict)
    src: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, Counter[str]] = field(default_factory=dict)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return _EMPTY_I, _EMPTY_I, _EMPTY_I, np.zeros(0, dtype=object), np.zeros(0, dtype=bool)
        cols = list(zip(*self.parts, strict=True))
        return (
            np.concatenate(cols[0]),
            np.concatenate(cols[1]),
            np.concatenate(cols[2]),
            np.concatenate(cols[3]),
            np.concatenate(cols[4]),
        )


def _detect_unique(
    values: list[str],
    all_values: Sequence[str],
    *,
    column: str | None,
    sample: int,
    dets: tuple[Detector, ...],
) -> _Found:
    """Spans over the distinct ``values``; ``all_values`` (with repeats) feed the distribution tests.

    Flat JSON-object cells are scanned by key (:mod:`._jsoncells`); the other cells by span detection.
    Cells with smuggling characters (zero-width, one separator between every character) are scanned
    normalised and their findings mapped back (:mod:`._normalise`)."""
    norms = normalised_cells(values)
    if norms:
        values = [norms[r].text if r in norms else v for r, v in enumerate(values)]
        head = all_values[:sample]
        all_values = [n.text if (n := normalise(v)) is not None else v for v in head]
    found = _detect_cells(values, all_values, column=column, sample=sample, dets=dets)
    return remap(found, norms) if norms else found


def _detect_cells(
    values: list[str],
    all_values: Sequence[str],
    *,
    column: str | None,
    sample: int,
    dets: tuple[Detector, ...],
) -> _Found:
    keyed: _Found | None = None
    texts = values
    if looks_json(values[:sample]):
        keyed, handled = _scan_by_key(values, sample=sample, dets=dets)
        if keyed is not None:
            texts = ["" if h else v for v, h in zip(values, handled, strict=True)]
    out = _detect_text_cells(texts, values, all_values, column=column, sample=sample, dets=dets)
    if keyed is not None:
        out.parts.extend(keyed.parts)
        for e, c in keyed.conf.items():
            out.conf[e] = max(out.conf.get(e, 0.0), c)
            out.src.setdefault(e, keyed.src[e])
            out.shapes.setdefault(e, Counter()).update(keyed.shapes.get(e, Counter()))
    return out


def normalised_cells(values: Sequence[str]) -> dict[int, Normalised]:
    """The cells of ``values`` holding smuggling characters, normalised (one search over all cells first)."""
    if not suspect(SEP.join(values)):
        return {}
    return {r: n for r, v in enumerate(values) if (n := normalise(v)) is not None}


def remap(found: _Found, norms: dict[int, Normalised]) -> _Found:
    """``found`` (normalised cells) in the original cells' coordinates, plus concealed runs as secrets."""
    parts = []
    for rows, starts, ends, ents, full in found.parts:
        starts, ends = starts.copy(), ends.copy()
        for k, r in enumerate(rows.tolist()):
            norm = norms.get(r)
            if norm is not None:
                starts[k], ends[k] = norm.span(int(starts[k]), int(ends[k]))
        parts.append((rows, starts, ends, ents, full))
    by_row: dict[int, list[tuple[int, int]]] = {}
    for rows, starts, ends, _e, _f in found.parts:
        for r, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
            if r in norms:
                by_row.setdefault(r, []).append((a, b))
    hidden = [
        (r, *norm.span(a, b)) for r, norm in norms.items() for a, b in concealed_runs(norm, by_row.get(r, []))
    ]
    if hidden:
        h = np.asarray(hidden, dtype=np.int64)
        parts.append(
            (h[:, 0], h[:, 1], h[:, 2], np.full(len(h), E.SECRET, dtype=object), np.ones(len(h), bool))
        )
        found.conf[E.SECRET] = max(found.conf.get(E.SECRET, 0.0), 0.6)
        found.src.setdefault(E.SECRET, "concealed")
        found.shapes.setdefault(E.SECRET, Counter())["a.a.a.a+"] += len(h)
    found.parts = parts
    return found


MAX_JSON_KEYS = 64  # more distinct keys in a chunk: span detection over the text instead


def _scan_by_key(
    values: list[str], *, sample: int, dets: tuple[Detector, ...]
) -> tuple[_Found | None, list[bool]]:
    """Each key's values as a column of their own; findings mapped back into their cells."""
    by_key: dict[str, tuple[list[str], list[int], list[int]]] = {}
    handled: list[bool] = []
    for r, v in enumerate(values):
        fields = flat_object(v) if v else None
        handled.append(fields is not None)
        for key, a, b in fields or ():
            vals, rows, offs = by_key.setdefault(key, ([], [], []))
            vals.append(v[a:b])
            rows.append(r)
            offs.append(a)
        if len(by_key) > MAX_JSON_KEYS:
            return None, []
    out = _Found()
    for key, (vals, rows, offs) in by_key.items():
        hits = detect_values(vals, column=key, sample=sample, detectors=dets)
        if not len(hits.span_rows):
            continue
        cell_rows = np.asarray(rows, dtype=np.int64)[hits.span_rows]
        base = np.asarray(offs, dtype=np.int64)[hits.span_rows]
        starts, ends = base + hits.span_starts, base + hits.span_ends
        cell_len = np.fromiter(
            (len(values[r]) for r in cell_rows.tolist()), dtype=np.int64, count=len(cell_rows)
        )
        out.parts.append((cell_rows, starts, ends, hits.span_entities, (ends - starts) >= 0.8 * cell_len))
        for e, eh in hits.entities.items():
            out.conf[e] = max(out.conf.get(e, 0.0), eh.confidence)
            out.src.setdefault(e, eh.source)
            out.shapes.setdefault(e, Counter()).update(eh.shapes)
    return out, handled


def _detect_text_cells(
    values: list[str],
    original: list[str],
    all_values: Sequence[str],
    *,
    column: str | None,
    sample: int,
    dets: tuple[Detector, ...],
) -> _Found:
    """Span detection and column context over ``values`` (cells scanned by key are empty strings here)."""
    n = len(values)
    joined = SEP.join(values)
    offsets = _offsets(values)
    non_empty = n - (1 if "" in original else 0)

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
    spans = finalize([sp for per_det in run_all(active, rest) for sp in per_det], rest)
    if rest_from:
        spans = sampled + [Span(e, a + rest_from, b + rest_from, c, src) for e, a, b, c, src in spans]

    hints = column_hints(column)
    hinted = {entity for entity, _ in hints}
    spans = drop_stray_names(spans, original, hinted, non_empty)
    if any(s.entity == E.DATE for s in spans):
        if E.DATE_OF_BIRTH in hinted:
            spans = [s._replace(entity=E.DATE_OF_BIRTH) if s.entity == E.DATE else s for s in spans]
        else:
            spans = birth_context(joined, spans)

    out = _Found()
    m = len(spans)
    starts = np.fromiter((s.start for s in spans), dtype=np.int64, count=m)
    ends = np.fromiter((s.end for s in spans), dtype=np.int64, count=m)
    rows = np.searchsorted(offsets, starts, side="right") - 1
    base = offsets[rows]
    vlen = offsets[rows + 1] - base - 1
    ent_arr = np.fromiter((s.entity for s in spans), dtype=object, count=m)
    out.parts.append((rows, starts - base, ends - base, ent_arr, (ends - starts) >= 0.8 * vlen))
    claimed_by: dict[str, list[int]] = {}
    for k, s in enumerate(spans):
        claimed_by.setdefault(s.entity, []).append(k)
    for e in sorted(claimed_by):
        first = claimed_by[e][:50]
        out.conf[e] = max(spans[k].confidence for k in first)
        out.src[e] = spans[first[0]].source
        out.shapes[e] = Counter(masked_shape(joined[spans[k].start : spans[k].end]) for k in first)

    # Column context: name hints confirmed by value shape, and name-like value distributions.
    context: list[tuple[str, re.Pattern[str]]] = list(hints)
    if E.PERSON not in hinted and looks_like_names(all_values[:sample]):
        context.append((E.PERSON, PERSON_HINT[2]))
    if E.NATIONAL_ID not in hinted and E.NATIONAL_ID not in out.conf:
        weak = weak_id_column(all_values[:sample])
        if weak is not None:
            context.append((E.NATIONAL_ID, ID_SHAPE))
    entity_rows = {e: rows[ks] for e, ks in claimed_by.items()}
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
        claimed = np.unique(np.concatenate([rows, entity_rows.get(entity, _EMPTY_I)]))
        new = np.setdiff1d(hint_rows, claimed, assume_unique=True)
        if not len(new) and entity in entity_rows:
            continue
        entity_rows[entity] = np.concatenate([entity_rows.get(entity, _EMPTY_I), new])
        out.conf[entity] = max(out.conf.get(entity, 0.0), 0.8 if entity in hinted else 0.7)
        out.src.setdefault(entity, "column-name" if entity in hinted else "value-distribution")
        sh = out.shapes.setdefault(entity, Counter())
        for r in new[:50].tolist():
            sh[masked_shape(values[r])] += 1
        lens = np.fromiter((len(values[r]) for r in new.tolist()), dtype=np.int64, count=len(new))
        out.parts.append(
            (
                new,
                np.zeros(len(new), dtype=np.int64),
                lens,
                np.full(len(new), entity, dtype=object),
                np.ones(len(new), dtype=bool),
            )
        )
    return out


__all__ = ["ColumnHits", "EntityHits", "detect_values"]
