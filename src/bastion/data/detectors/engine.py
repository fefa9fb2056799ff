"""Running detectors over a text: candidates, overlap resolution, deferred confirmation, birth context."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from bastion.data import entities as E
from bastion.data.detectors._combine import Group, candidates, plan
from bastion.data.detectors._common import DEFERRED, birth_word
from bastion.data.detectors._gate import Gate
from bastion.data.detectors._normalise import concealed_runs, normalise
from bastion.data.detectors.interface import Detector, Span

PRIORITY: dict[str, int] = {
    e: i
    for i, e in enumerate(
        [
            E.SECRET,
            E.EMAIL,
            E.IBAN,
            E.CREDIT_CARD,
            E.US_SSN,
            E.NATIONAL_ID,
            E.PASSPORT,
            E.DRIVER_LICENSE,
            E.IP_ADDRESS,
            E.MAC_ADDRESS,
            E.PHONE,
            E.DATE_OF_BIRTH,
            E.DATE,
            E.STREET_ADDRESS,
            E.PERSON,
        ]
    )
}
# The ``confirm`` check of each deferred entity, filled as detectors run.
_CONFIRMERS: dict[str, Callable[[str], bool]] = {}


def run_detector(det: Detector, text: str, out: list[Span]) -> None:
    """Append ``det``'s findings in ``text`` to ``out`` (deferred candidates keep source ``DEFERRED``)."""
    if det.prefilter is not None and det.prefilter not in text:
        return
    if det.confirm is not None and det.entity not in _CONFIRMERS:
        _CONFIRMERS[det.entity] = det.confirm
    if det.finder is not None:
        out.extend(Span(det.entity, a, b, c, det.source) for a, b, c in det.finder(text) if b > a)
        return
    validate = det.validate
    entity, conf, source = det.entity, det.confidence, det.source
    if validate is None:
        out.extend(Span(entity, m.start(), m.end(), conf, source) for m in det.pattern.finditer(text))
        return
    for m in det.pattern.finditer(text):
        pos = validate(m)
        if pos is None:
            continue
        if isinstance(pos, list):
            out.extend(Span(entity, a, b, conf, source) for a, b in pos)
        elif pos[1] > pos[0]:
            out.append(Span(entity, pos[0], pos[1], conf, source))


def _run_at(det: Detector, text: str, positions: list[int], out: list[Span]) -> None:
    """``run_detector`` at the candidate positions of a combined pass (``finditer``'s non-overlap kept)."""
    if det.confirm is not None and det.entity not in _CONFIRMERS:
        _CONFIRMERS[det.entity] = det.confirm
    validate = det.validate
    entity, conf, source = det.entity, det.confidence, det.source
    match = det.pattern.match
    last = 0
    for p in positions:
        if p < last:
            continue
        m = match(text, p)
        if m is None:
            continue
        last = m.end() if m.end() > p else p + 1
        if validate is None:
            out.append(Span(entity, m.start(), m.end(), conf, source))
            continue
        pos = validate(m)
        if pos is None:
            continue
        if isinstance(pos, list):
            out.extend(Span(entity, a, b, conf, source) for a, b in pos)
        elif pos[1] > pos[0]:
            out.append(Span(entity, pos[0], pos[1], conf, source))


# A pattern's leading single-character atom with a counted repeat: ``[A-Za-z0-9_+/=-]{32,256}``.
_LEADING_REPEAT = re.compile(
    r"(\\[dwsDWS]|\[(?!\^)(?:\\.|[^\]\\])+\]|[A-Za-z0-9])\{(\d+)(?:(,)(\d*))?\}(?![?+])"
)


def prefix_friendly(det: Detector) -> Detector:
    """``X{n,m}REST`` as ``XX{n-1,m-1}REST`` for a single-character ``X`` at the very start of the pattern.

    The same matches (a one-character atom has one way to match, so greedy backtracking tries the same
    lengths), but a pattern that starts with a plain character class lets Python's regex engine skip ahead
    to the characters it can start with instead of trying the repeat at every position: the generic secret
    pattern ``[A-Za-z0-9_+/=-]{32,256}`` scans ~5x faster. Named groups and group numbers are unchanged.
    """
    if det.finder is not None:
        return det
    text = det.pattern.pattern
    m = _LEADING_REPEAT.match(text)
    if m is None or int(m.group(2)) == 0:
        return det
    atom, n, comma, hi = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    if comma is None:
        more = f"{{{n - 1}}}"
    elif hi:
        if int(hi) < n:
            return det
        more = f"{{{n - 1},{int(hi) - 1}}}"
    else:
        more = f"{{{n - 1},}}"
    try:
        pattern = re.compile(atom + atom + more + text[m.end() :], det.pattern.flags)
    except re.error:
        return det
    return replace(det, pattern=pattern)


# Combined-pass plans and gates, keyed by the identities of the detectors (which the entry keeps alive).
_PLANS: dict[
    tuple[int, ...],
    tuple[tuple[Detector, ...], tuple[Group, ...], tuple[int, ...], tuple[Detector, ...], Gate],
] = {}
# The chunk gate (``_gate``): skip the detectors whose relaxed pattern matches nowhere in the text. Same
# findings either way (``tests/data/test_fastpath.py``); ``False`` runs every detector (the reference path).
USE_GATE = True


def _plan_for(
    dets: Sequence[Detector],
) -> tuple[tuple[Group, ...], tuple[int, ...], tuple[Detector, ...], Gate]:
    key = tuple(map(id, dets))
    hit = _PLANS.get(key)
    if hit is None:
        if len(_PLANS) >= 64:
            _PLANS.clear()
        groups, alone = plan(dets)
        hit = (tuple(dets), groups, alone, tuple(prefix_friendly(dets[i]) for i in alone), Gate(dets))
        _PLANS[key] = hit
    return hit[1], hit[2], hit[3], hit[4]


def run_all(dets: Sequence[Detector], text: str) -> list[list[Span]]:
    """Every detector's findings in ``text``, one list per detector, identical to running each alone;
    detectors whose relaxed patterns match nowhere in ``text`` are skipped (one RE2 pass, ``_gate``),
    detectors whose patterns share a first character class are scanned in one combined pass, the others
    with :func:`prefix_friendly` patterns."""
    per: list[list[Span]] = [[] for _ in dets]
    groups, alone, alone_dets, gate = _plan_for(dets)
    alive = gate.alive(text) if USE_GATE else None
    for i, det in zip(alone, alone_dets, strict=True):
        if alive is None or alive[i]:
            run_detector(det, text, per[i])
    for g in groups:
        if alive is not None and not any(alive[i] for i in g.members):
            continue
        for i, positions in zip(g.members, candidates(g, text), strict=True):
            if positions:
                _run_at(dets[i], text, positions, per[i])
    return per


def finalize(spans: list[Span], text: str) -> list[Span]:
    """Resolve overlaps, then confirm the deferred candidates that won (phones: ``phonenumbers``).

    A candidate that fails its confirmation is removed and the overlaps resolved again, so a span it had
    hidden (a date, a name) comes back. Candidates that lost to a higher-priority entity (an identifier, a
    card, an IBAN) are never confirmed: that is where the time goes otherwise.
    """
    pool = spans
    verdict: dict[tuple[int, int, str], bool] = {}
    while True:
        kept = resolve_overlaps(list(pool))
        rejected = set()
        for i, sp in enumerate(kept):
            if sp.source != DEFERRED:
                continue
            key = (sp.start, sp.end, sp.entity)
            if key not in verdict:
                check = _CONFIRMERS.get(sp.entity)
                verdict[key] = True if check is None else check(text[sp.start : sp.end])
            if verdict[key]:
                kept[i] = sp._replace(source="pattern")
            else:
                rejected.add(key)
        if not rejected:
            return kept
        pool = [sp for sp in pool if (sp.start, sp.end, sp.entity) not in rejected]


_START = operator.itemgetter(1)
_END = operator.itemgetter(2)


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep non-overlapping spans: on overlap the higher-priority entity wins, then the longer span."""
    if not spans:
        return spans
    # By start, then longest first; equal spans keep their order (two stable C-keyed sorts, same order as
    # one sort on (start, -end)).
    spans.sort(key=_END, reverse=True)
    spans.sort(key=_START)
    kept: list[Span] = []
    for s in spans:
        if kept and s.start < kept[-1].end:
            prev = kept[-1]
            if (PRIORITY.get(s.entity, 50), -(s.end - s.start)) < (
                PRIORITY.get(prev.entity, 50),
                -(prev.end - prev.start),
            ):
                kept[-1] = s
            continue
        kept.append(s)
    return kept


def birth_context(text: str, spans: list[Span]) -> list[Span]:
    """Dates preceded by a birth word ('born', 'DOB', 'geboren' …) become dates of birth."""
    out = []
    for s in spans:
        if s.entity == E.DATE and birth_word(text, max(0, s.start - 30), s.start):
            s = s._replace(entity=E.DATE_OF_BIRTH, confidence=0.8)
        out.append(s)
    return out


def detect_text(text: str, *, detectors: Sequence[Detector] | None = None) -> list[Span]:
    """Entity spans in free text, overlaps resolved. Dates near 'born'/'DOB' become DATE_OF_BIRTH."""
    if detectors is None:
        from bastion.data.detectors.registry import all_detectors

        detectors = all_detectors()
    norm = normalise(text)
    if norm is not None:  # smuggling characters: detect on the normalised text, map back (``_normalise``)
        spans = detect_text(norm.text, detectors=detectors)
        hidden = concealed_runs(norm, [(s.start, s.end) for s in spans])
        spans += [Span(E.SECRET, a, b, 0.6, "concealed") for a, b in hidden]
        mapped = []
        for s in spans:
            start, end = norm.span(s.start, s.end)
            mapped.append(s._replace(start=start, end=end))
        return sorted(mapped, key=_START)
    found = [sp for per_det in run_all(detectors, text) for sp in per_det]
    return birth_context(text, finalize(found, text))


__all__ = [
    "PRIORITY",
    "birth_context",
    "detect_text",
    "finalize",
    "prefix_friendly",
    "resolve_overlaps",
    "run_all",
    "run_detector",
]
