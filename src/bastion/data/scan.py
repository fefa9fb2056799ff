"""Discovery and classification: stream a file, detect entities per column (or per text span), label it.

Evidence never contains raw values: counts, shares, row indices / (line, start, end) positions, masked shapes
(``a+.a+@a+.a+``), confidences and which detector fired.

Labels per column: ``secret`` if any secret was found; ``pii`` if any PII entity was found; ``confidential``
for
quasi-identifiers (ZIP, age, gender, dates); ``internal`` otherwise. The classifier never infers ``public``:
absence of findings is not evidence that data may be published, so only a policy can label a column public.
The file's label is the most sensitive column label.

Length: the column accumulator and its classification rules are one algorithm (what a column is follows
from everything accumulated about it); the detectors themselves live in ``data/detectors/``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bastion.data import entities as E
from bastion.data._split import split_entities
from bastion.data.detectors import ColumnHits, all_detectors, column_hints, detect_text, detect_values
from bastion.data.entities import Action, Label
from bastion.data.io import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_LINE_BYTES,
    TEXT_COLUMN,
    detect_format,
    iter_chunks,
)
from bastion.data.policy import Policy

MAX_POSITIONS = 5
SHAPE_SAMPLE = 512  # cells per chunk looked at to tell prose and structured cells from short values


@dataclass(frozen=True)
class EntityEvidence:
    """Sample-free evidence of one entity in one column."""

    entity: str
    count: int  # cells (text: spans) where it was found
    share: float  # count / non-empty cells
    confidence: float
    source: str  # pattern | names | column-name | value-distribution | presidio
    positions: tuple[tuple[int, int, int], ...]  # (row, start, end) of the first few findings
    shapes: tuple[str, ...]


@dataclass(frozen=True)
class ColumnReport:
    name: str
    rows: int
    non_empty: int
    entities: tuple[EntityEvidence, ...]
    label: Label
    quasi_identifier: bool
    kind: str  # structured | free_text | sparse (a few stray pattern hits: only those spans) | empty
    primary_entity: str | None
    action: Action
    # Text files: lines with a pii/secret finding (the share decides whether the other lines fail closed).
    cells_with_findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "non_empty": self.non_empty,
            "label": self.label.value,
            "quasi_identifier": self.quasi_identifier,
            "kind": self.kind,
            "primary_entity": self.primary_entity,
            "action": self.action.value,
            "entities": [
                {
                    "entity": e.entity,
                    "count": e.count,
                    "share": round(e.share, 4),
                    "confidence": e.confidence,
                    "source": e.source,
                    "positions": [list(p) for p in e.positions],
                    "shapes": list(e.shapes),
                }
                for e in self.entities
            ],
        }


@dataclass(frozen=True)
class ScanReport:
    path: str
    format: str
    digest: str
    rows: int
    bytes: int
    columns: tuple[ColumnReport, ...]
    label: Label
    engines: tuple[str, ...]

    def column(self, name: str) -> ColumnReport:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def entity_counts(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for c in self.columns:
            for e in c.entities:
                out[e.entity] += e.count
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "digest": self.digest,
            "rows": self.rows,
            "bytes": self.bytes,
            "label": self.label.value,
            "engines": list(self.engines),
            "entity_counts": self.entity_counts(),
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass
class _Acc:
    """Per-column accumulator across chunks (bounded: counts and the first few positions only)."""

    name: str
    rows: int = 0
    non_empty: int = 0
    chars: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    full: Counter[str] = field(default_factory=Counter)
    conf: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    positions: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    shapes: dict[str, Counter[str]] = field(default_factory=dict)
    prose: int = 0  # cells of six words or more
    structured: int = 0  # cells holding JSON, key=value lists or delimited fields
    shape_seen: int = 0  # non-empty cells sampled for the two counts above
    years: Counter[int] = field(default_factory=Counter)  # first 4-digit year of each sampled short cell
    timed: int = 0  # sampled short cells with a time of day (event timestamps)
    hit_lines: int = 0  # text files: lines with a pii/secret finding
    split: str | None = None  # the entity this column holds one half of, with its neighbour (F-SPLIT)

    def add_shape(self, values: Sequence[str]) -> None:
        from bastion.data._cells import looks_structured

        seen = prose = structured = timed = 0  # local counters: one attribute update per chunk, not per cell
        years = self.years
        for v in values[:SHAPE_SAMPLE]:
            if not v:
                continue
            seen += 1
            if len(v) <= 40:
                year = _YEAR.search(v)
                if year is not None:
                    years[int(year.group())] += 1
                    timed += _TIME.search(v) is not None
            if v.count(" ") >= 5:
                prose += 1
            if len(v) > 8 and looks_structured(v):
                structured += 1
        self.shape_seen += seen
        self.prose += prose
        self.structured += structured
        self.timed += timed

    def add(self, hits: ColumnHits, offset: int) -> None:
        self.rows += hits.n_values
        self.non_empty += hits.n_non_empty
        self.chars += hits.total_chars
        for entity, eh in hits.entities.items():
            self.counts[entity] += len(eh.rows)
            self.full[entity] += eh.full
            self.conf[entity] = max(self.conf.get(entity, 0.0), eh.confidence)
            self.source.setdefault(entity, eh.source)
            sh = self.shapes.setdefault(entity, Counter())
            for s in eh.shapes:
                sh[s] += 1
            pos = self.positions.setdefault(entity, [])
            if len(pos) < MAX_POSITIONS:
                sel = np.flatnonzero(hits.span_entities == entity)[: MAX_POSITIONS - len(pos)]
                for k in sel.tolist():
                    pos.append(
                        (int(hits.span_rows[k]) + offset, int(hits.span_starts[k]), int(hits.span_ends[k]))
                    )

    def add_text(
        self, spans_by_line: list[tuple[int, int, int, str, float, str, str]], policy: Policy
    ) -> None:
        sensitive = (Label.pii, Label.secret)
        self.hit_lines += len({s[0] for s in spans_by_line if entity_label(s[3], policy) in sensitive})
        for line, start, end, entity, conf, source, shape in spans_by_line:
            self.counts[entity] += 1
            self.conf[entity] = max(self.conf.get(entity, 0.0), conf)
            self.source.setdefault(entity, source)
            self.shapes.setdefault(entity, Counter())[shape] += 1
            pos = self.positions.setdefault(entity, [])
            if len(pos) < MAX_POSITIONS:
                pos.append((line, start, end))

    def report(self, policy: Policy, *, text: bool) -> ColumnReport:
        rule = policy.columns.get(self.name)
        evidence = tuple(
            EntityEvidence(
                entity=e,
                count=n,
                share=n / max(self.non_empty, 1),
                confidence=round(self.conf[e], 3),
                source=self.source[e],
                positions=tuple(self.positions.get(e, ())),
                shapes=tuple(s for s, _ in self.shapes.get(e, Counter()).most_common(3)),
            )
            for e, n in self.counts.most_common()
        )
        found = [ev.entity for ev in evidence]
        if self.split is not None and self.split not in found:
            # Half of a value split across adjacent columns: the column holds it in every cell (whole).
            share = EntityEvidence(self.split, self.non_empty, 1.0, 0.6, "adjacent-columns", (), ())
            evidence, found = (share, *evidence), [self.split, *found]
            self.full[self.split] = self.non_empty
        labels = [entity_label(e, policy) for e in found]
        label = E.max_label(labels) if labels else Label.internal
        qi = any(e in E.QUASI_IDENTIFIERS for e in found)
        if found and set(found) <= {E.DATE} and not any(e == E.DATE for e, _ in column_hints(self.name)):
            # A column of dates only under a header that says nothing (``geboren``, ``col7``): dates about
            # people until they look like event dates (issue 21 F1) -- confidential, generalized. Order,
            # release or log dates (with times of day, close together or recent) stay internal.
            if _event_dates(self.years, self.timed):
                label, qi = Label.internal, False
            else:
                label, qi = Label.confidential, True
        primary = found[0] if found else None
        whole = primary is not None and self.full[primary] >= 0.5 * self.non_empty
        # Fail closed against cells shaped to look like prose or key=value lists (issue 21 F2): a column
        # whose header names a sensitive entity, or whose main entity is sensitive and fills whole cells
        # (>= 20 %), stays a column protected whole, whatever the other cells look like.
        sensitive_header = any(
            entity_label(e, policy) in (Label.pii, Label.secret)
            for e, _ in column_hints(self.name, roles=False)
        )
        main_sensitive = (
            primary is not None
            and entity_label(primary, policy) in (Label.pii, Label.secret)
            and self.full[primary] >= 0.2 * self.non_empty
        )
        sparse = (
            not text
            and self.split is None
            and not (rule is not None and rule.whole)
            and not sensitive_header
            and self.non_empty >= SPARSE_MIN_CELLS
            and bool(found)
            and all(
                e in SPARSE_ENTITIES or entity_label(e, policy) not in (Label.pii, Label.secret)
                for e in found
            )
            and sum(self.counts[e] for e in found if e in SPARSE_ENTITIES) < SPARSE_SHARE * self.non_empty
        )
        if sparse and label in (Label.pii, Label.secret):
            # A few stray pattern hits (an EAN-13 passing Luhn, a number read as a phone) in a column with no
            # telling header do not make the column pii (issue 21 F7): the column is kept, and only the cells
            # with a finding get their spans replaced (kind ``sparse``).
            rest = [entity_label(e, policy) for e in found if e not in SPARSE_ENTITIES]
            label = E.max_label(rest) if rest else Label.internal
            kind = "sparse"
        elif rule is not None and rule.whole:
            kind = "structured"  # the policy says: every cell (text files: every line) protected whole
        elif text:
            kind = "free_text"
        elif self.non_empty == 0:
            kind = "empty"
        elif rule is not None and rule.prose:
            kind = "free_text"
        elif whole or sensitive_header or main_sensitive:
            kind = "structured"
        elif self.prose >= 0.3 * self.shape_seen or self.structured >= 0.5 * self.shape_seen:
            kind = "free_text"
        else:
            # Short values: a column, protected whole when sensitive, however few cells a detector matched.
            kind = "structured"
        if rule is not None:
            label = rule.label or label
            qi = rule.quasi_identifier if rule.quasi_identifier is not None else qi
            primary = rule.entity or primary
        action = planned_action(
            policy.action_for(column=self.name, label=label, quasi_identifier=qi),
            kind=kind,
            label=label,
            explicit=rule is not None and rule.action is not None,
            text=text,
            policy=policy,
        )
        return ColumnReport(
            name=self.name,
            rows=self.rows,
            non_empty=self.non_empty,
            entities=evidence,
            label=label,
            quasi_identifier=qi,
            kind=kind,
            primary_entity=primary,
            action=action,
            cells_with_findings=self.hit_lines,
        )


# Entities found by validated patterns (check digits, libphonenumber, structure): few hits among many cells
# are more likely chance matches than a column of them. Names, addresses, e-mails, dates of birth and
# secrets are never treated so (a column of names mostly outside the lists must stay protected whole).
SPARSE_ENTITIES = frozenset(
    {E.PHONE, E.CREDIT_CARD, E.IBAN, E.NATIONAL_ID, E.US_SSN, E.PASSPORT, E.DRIVER_LICENSE}
    | E.PRESIDIO_PII_ENTITIES
)
SPARSE_SHARE = 0.03
SPARSE_MIN_CELLS = 100
# The left boundary after the first digit: every branch starts with a literal, so the engine skips ahead.
_YEAR = re.compile(r"(?:1(?<!\d1)[89]\d\d|2(?<!\d2)0\d\d)(?!\d)")
_TIME = re.compile(r"(?<!\d)[0-2]?\d:[0-5]\d(?!\d)")
EVENT_SPREAD_YEARS = 12  # dates of birth of adults spread over decades; order or log dates over a few years
RECENT_YEARS = 3


def _event_dates(years: Counter[int], timed: int) -> bool:
    """Dates that describe events, not people: most carry a time of day, their years (10th to 90th
    percentile) lie within ``EVENT_SPREAD_YEARS``, or nearly all are from the last ``RECENT_YEARS`` years.
    Too few readable years: not event dates (fail closed)."""
    n = sum(years.values())
    if n < 5:
        return False
    if timed >= 0.5 * n:
        return True
    ordered = sorted(years.elements())
    p10, p90 = ordered[n // 10], ordered[min(n - 1, (9 * n) // 10)]
    return p90 - p10 < EVENT_SPREAD_YEARS or p10 >= date.today().year - RECENT_YEARS


def planned_action(
    action: Action, *, kind: str, label: Label, explicit: bool, text: bool, policy: Policy
) -> Action:
    """The action ``protect`` applies to a column, so that scan shows what protect will do (issue 21 r5
    finding 13). Free text labelled ``pii``/``secret`` gets the ``pii`` action on its spans (secrets inside
    are always redacted) rather than losing the column; a sparse column gets it on the cells with a finding;
    a text file's findings are redacted rather than the file dropped. A policy's own action stays."""
    if explicit:
        return Action.redact if text and action == Action.drop else action
    if kind == "free_text" and label in (Label.pii, Label.secret):
        action = policy.defaults[Label.pii.value]
    if kind == "sparse" and action in (Action.keep, Action.generalize):
        action = policy.defaults[Label.pii.value]
        if action == Action.drop:
            action = Action.redact
    if text and action == Action.drop:
        action = Action.redact  # a text file has one column: drop its findings, not the file
    return action


def entity_label(entity: str, policy: Policy) -> Label:
    """A found entity's label under ``policy`` (MAC addresses follow ``[options] mac_address``)."""
    if entity == E.MAC_ADDRESS and policy.mac_address != "pii":
        return Label.internal
    return E.entity_label(entity)


def _engines(use_presidio: bool) -> tuple[str, ...]:
    names = ["bastion-patterns", "column-context"]
    if use_presidio and any(d.source == "presidio" for d in all_detectors(use_presidio=True)):
        names.append("presidio-patterns")
    return tuple(names)


def scan_file(
    *,
    path: str | Path,
    fmt: str | None = None,
    policy: Policy | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    use_presidio: bool = True,
    digest: str | None = None,
) -> ScanReport:
    """Stream ``path`` and classify every column (text files: one ``text`` pseudo-column of lines)."""
    from bastion.data.io import sha256_file

    p = Path(path)
    kind = detect_format(p, fmt)
    pol = policy or Policy()
    detectors = all_detectors(use_presidio=use_presidio)
    accs: dict[str, _Acc] = {}
    rows = 0
    for chunk in iter_chunks(p, fmt=kind, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes):
        rows += chunk.n_rows
        if kind == "text":
            acc = accs.setdefault(TEXT_COLUMN, _Acc(TEXT_COLUMN))
            _scan_text_chunk(acc, chunk.data[TEXT_COLUMN], chunk.row_offset, detectors, pol)
            continue
        for name in chunk.columns:
            acc = accs.setdefault(name, _Acc(name, rows=chunk.row_offset))  # earlier rows lacked the key
            acc.add(detect_values(chunk.data[name], column=name, detectors=detectors), chunk.row_offset)
            acc.add_shape(chunk.data[name])
        if chunk.row_offset == 0 and len(chunk.columns) > 1:
            halves = split_entities(
                chunk.columns,
                chunk.data,
                detectors=detectors,
                label_of=lambda e: entity_label(e, pol),
                skip=lambda c: bool(accs[c].counts),  # a column with findings of its own is no lone half
            )
            for name, entity in halves.items():
                accs[name].split = entity
        for name, acc in accs.items():  # a JSONL key absent from this chunk: count its rows as empty
            if name not in chunk.data:
                acc.rows += chunk.n_rows
    columns = tuple(a.report(pol, text=(kind == "text")) for a in accs.values())
    return ScanReport(
        path=str(p.resolve()),
        format=kind,
        digest=digest or sha256_file(p),
        rows=rows,
        bytes=p.stat().st_size,
        columns=columns,
        label=E.max_label([c.label for c in columns]),
        engines=_engines(use_presidio),
    )


def text_spans(lines: Sequence[str], detectors: Sequence[Any]) -> list[list[tuple[int, int, str]]]:
    """Per line, the (start, end, entity) spans found (lines joined and scanned as one text)."""
    from bastion.data.detectors import SEP

    joined = SEP.join(lines)
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum([len(line) + 1 for line in lines], out=starts[1:])
    out: list[list[tuple[int, int, str]]] = [[] for _ in lines]
    for s in detect_text(joined, detectors=detectors):
        line = int(np.searchsorted(starts, s.start, side="right")) - 1
        base = int(starts[line])
        out[line].append((s.start - base, s.end - base, s.entity))
    return out


def _scan_text_chunk(
    acc: _Acc, lines: list[str], offset: int, detectors: Sequence[Any], policy: Policy
) -> None:
    from bastion.data.detectors import SEP, masked_shape

    joined = SEP.join(lines)
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum([len(line) + 1 for line in lines], out=starts[1:])
    acc.rows += len(lines)
    acc.non_empty += sum(1 for line in lines if line)
    acc.chars += len(joined)
    found = []
    for s in detect_text(joined, detectors=detectors):
        line = int(np.searchsorted(starts, s.start, side="right")) - 1
        base = int(starts[line])
        found.append(
            (
                line + offset,
                s.start - base,
                s.end - base,
                s.entity,
                s.confidence,
                s.source,
                masked_shape(joined[s.start : s.end]),
            )
        )
    acc.add_text(found, policy)


__all__ = [
    "ColumnReport",
    "EntityEvidence",
    "ScanReport",
    "entity_label",
    "planned_action",
    "scan_file",
    "text_spans",
]
