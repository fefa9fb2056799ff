"""The engine's fast path (the RE2 chunk gate, ``detectors/_gate.py``) finds exactly what the full path finds.

The gate skips a detector on a text where its *relaxed* pattern (assertions dropped, classes widened) has no
RE2 match. That is exact only if every relaxed pattern matches a superset of its Python pattern: checked
here per detector on generated texts, per character class over all of Unicode, and end to end (fast path vs
full path) on the evaluation corpus and on freshly generated distinct rows.
"""

from __future__ import annotations

import csv
import importlib.util
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.data.detectors import all_detectors, detect_text, detect_values, engine
from bastion.data.detectors._gate import MIN_CHARS, Gate, gate_pattern, relax

re2 = pytest.importorskip("re2")
CORPUS = Path(__file__).parent / "corpus"


def _generate(n_rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    spec = importlib.util.spec_from_file_location("corpus_generate_fastpath", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    header, rows, _labels = mod.build(n_rows, seed)
    return header, rows


def _corpus() -> tuple[list[str], list[list[str]]]:
    with (CORPUS / "customers.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _findings(header: list[str], rows: list[list[str]], gate: bool) -> dict[str, object]:
    dets = all_detectors()
    old = engine.USE_GATE
    engine.USE_GATE = gate
    try:
        out: dict[str, object] = {}
        for j, col in enumerate(header):
            hits = detect_values([r[j] for r in rows], column=col, detectors=dets)
            out[col] = (
                sorted(hits.spans_by_row().items()),
                sorted(
                    (e, eh.rows.tolist(), eh.full, eh.confidence, eh.source, eh.shapes)
                    for e, eh in hits.entities.items()
                ),
            )
        return out
    finally:
        engine.USE_GATE = old


def _gated_skips(header: list[str], rows: list[list[str]]) -> int:
    gate = Gate(all_detectors())
    skipped = 0
    for j in range(len(header)):
        alive = gate.alive("\x00".join(r[j] for r in rows))
        skipped += 0 if alive is None else alive.count(False)
    return skipped


def test_fast_path_equals_full_path_on_the_corpus() -> None:
    header, rows = _corpus()
    assert _gated_skips(header, rows) > 100  # the gate does skip detectors here
    assert _findings(header, rows, gate=True) == _findings(header, rows, gate=False)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_fast_path_equals_full_path_on_distinct_generated_rows(seed: int) -> None:
    header, rows = _generate(300, seed)  # > 2 x the sample: sample-and-confirm and the gate both engage
    assert _findings(header, rows, gate=True) == _findings(header, rows, gate=False)


def test_fast_path_equals_full_path_on_long_free_text() -> None:
    header, rows = _generate(300, 11)
    notes = "\n".join(r[header.index("notes")] for r in rows)
    assert len(notes) > MIN_CHARS
    engine.USE_GATE = False
    try:
        full = detect_text(notes)
    finally:
        engine.USE_GATE = True
    assert detect_text(notes) == full


# Texts made of what the detectors' patterns are made of: digits, letters, separators, other scripts.
_ALPHABET = "0123456789 .-/:+()@_=,'\nABCDEFGHIJKLMNOPQRSTUVXYZabcdefghijklmnopqrstuvwxyzéÉßø٣٤߀ΣжЖ王\x00"
_TEXTS = st.text(alphabet=_ALPHABET, min_size=0, max_size=120)


@pytest.mark.parametrize(
    "det", [d for d in all_detectors() if gate_pattern(d) is not None], ids=lambda d: d.source
)
@settings(max_examples=30, deadline=None)
@given(text=_TEXTS)
def test_relaxed_pattern_matches_wherever_the_pattern_does(det, text: str) -> None:
    pattern = gate_pattern(det)
    assert pattern is not None
    relaxed = relax(pattern)
    if relaxed is None:
        return  # no gate: the detector always runs
    program = re2.compile(relaxed)
    for m in pattern.finditer(text):
        # The relaxed pattern matches the very characters the pattern matched.
        assert program.search(m.group()) is not None or m.group() == "", (relaxed[:80], m.group())


def test_relaxed_patterns_are_supersets_on_known_matches() -> None:
    """Every span a detector's own pattern matches in the corpus and in generated rows, the relaxed
    pattern matches too (real data, not only random soup)."""
    header, rows = _corpus()
    h2, rows2 = _generate(300, 23)
    texts = ["\x00".join(r[j] for r in rows) for j in range(len(header))]
    texts += ["\x00".join(r[j] for r in rows2) for j in range(len(h2))]
    checked = 0
    for det in all_detectors():
        pattern = gate_pattern(det)
        relaxed = relax(pattern) if pattern is not None else None
        if relaxed is None:
            continue
        program = re2.compile(relaxed)
        for text in texts:
            for m in pattern.finditer(text):
                if m.group():
                    assert program.search(m.group()) is not None, (det.source, m.group())
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("python", "relaxed_of"),
    [(r"\w", r"[\w]"), (r"\d", r"[\d]"), (r"\s", r"[\s]"), (r"[^\W\d_]", r"[^\W\d_]"), (r"\S", r"\S")],
)
def test_class_translations_cover_all_of_unicode(python: str, relaxed_of: str) -> None:
    """``\\w``, ``\\d``, ``\\s`` and their negations, translated for RE2, cover every code point Python's
    (Unicode) classes match."""
    relaxed = relax(re.compile(relaxed_of))
    assert relaxed is not None
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    matched = "".join(re.findall(python, everything))
    assert matched
    assert re2.fullmatch(f"(?:{relaxed})*", matched) is not None


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"\bab(?=c)", "abc"),
        (r"(?<!x)\d{3}", "123"),
        (r"(a)-\1", "a-a"),
        (r"(?i:mar)\s\d", "MAR 3"),
        (r"(?i)straße", "STRAẞE"),  # case folding: a cased literal becomes any character
        (r"x{300}", "x" * 300),
        (r"(?>ab|a)c", "ac"),
        (r"(?:(a)|b)(?(1)c|d)", "bd"),
    ],
)
def test_relax_shapes(pattern: str, text: str) -> None:
    compiled = re.compile(pattern)
    assert compiled.search(text) is not None
    relaxed = relax(compiled)
    assert relaxed is None or re2.search(relaxed, text) is not None


def test_gate_fails_safe() -> None:
    gate = Gate(all_detectors())
    assert gate.alive("short") is None  # below MIN_CHARS: every detector runs
    assert (
        gate.alive("x" * MIN_CHARS + "\ud800") is None
    )  # a lone surrogate is not UTF-8: every detector runs
    alive = gate.alive("plain words only, nothing else " * 100)
    assert alive is not None and not all(alive) and any(alive)  # names and a few others still run


def _old_name_run() -> re.Pattern[str]:
    """``NAME_RUN`` as it was before its first character became one class (the reference)."""
    from bastion.data import _names as n

    first = (
        r"(?:[OoDdLl](?<![\w@.'’-][OoDdLl])['’]" + n._U + "|" + n._U + r"(?<![\w@.'’-]" + n._U + r"))"
        r"[^\W\d_]*(?:['’-][^\W\d_]+)*"
    )
    return re.compile(
        first + r"(?:(?:[ ]+|[ ]?-[ ]?)(?:" + n._PARTICLE + r"[ ]+){0,2}" + n._WORD + r"){0,4}" + n._SUFFIX
    )


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="OoDdLl'’ -@._AbcÉéxZ\x00van der0", max_size=80))
def test_name_run_with_a_class_first_finds_the_same_runs(text: str) -> None:
    from bastion.data._names import NAME_RUN

    old = _old_name_run()
    assert [m.span() for m in NAME_RUN.finditer(text)] == [m.span() for m in old.finditer(text)]


def test_name_run_same_runs_on_the_corpus() -> None:
    from bastion.data._names import NAME_RUN

    header, rows = _corpus()
    old = _old_name_run()
    for j in range(len(header)):
        text = "\x00".join(r[j] for r in rows)
        assert [m.span() for m in NAME_RUN.finditer(text)] == [m.span() for m in old.finditer(text)]


@settings(max_examples=80, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.sampled_from(["PERSON", "PHONE_NUMBER", "DATE"]), st.integers(0, 30), st.integers(0, 8)),
        max_size=30,
    )
)
def test_resolve_overlaps_orders_as_one_sort_on_start_then_longest(spans) -> None:
    from bastion.data.detectors.engine import resolve_overlaps
    from bastion.data.detectors.interface import Span

    items = [Span(e, a, a + n, 0.5, f"s{k}") for k, (e, a, n) in enumerate(spans)]
    reference = sorted(items, key=lambda s: (s.start, -s.end))
    two_pass = sorted(sorted(items, key=lambda s: s.end, reverse=True), key=lambda s: s.start)
    assert two_pass == reference
    assert resolve_overlaps(list(items)) == resolve_overlaps_reference(reference)


def resolve_overlaps_reference(ordered: list) -> list:
    from bastion.data.detectors.engine import PRIORITY

    kept: list = []
    for s in ordered:
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


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0128945 :-TZ/a", max_size=40))
def test_scan_year_pattern_with_literal_first_finds_the_same_years(text: str) -> None:
    from bastion.data.scan import _YEAR

    old = re.compile(r"(?<!\d)(?:1[89]\d\d|20\d\d)(?!\d)")
    assert [m.span() for m in _YEAR.finditer(text)] == [m.span() for m in old.finditer(text)]


def _keyword_texts() -> list[str]:
    header, rows = _corpus()
    h2, rows2 = _generate(300, 31)
    texts = ["\x00".join(r[j] for r in rows) for j in range(len(header))]
    texts += ["\x00".join(r[j] for r in rows2) for j in range(len(h2))]
    words = ["id", "no", "Nº", "n°", "BSN", "sin", "Social Insurance", "passport", "Reisepass", "паспорт"]
    words += [
        "护照",
        "DL",
        "driver's license",
        "Führerschein",
        "tin",
        "nie",
        "x",
        " ",
        "\x00",
        "123",
        "é",
        "身份",
    ]
    rng = random.Random(9)
    texts += [" ".join(rng.choice(words) for _ in range(2000)) for _ in range(5)]
    return texts


@pytest.mark.parametrize("name", ["_ID_CONTEXT", "_PASSPORT_CONTEXT", "_LICENCE_CONTEXT"])
def test_keyword_hits_by_re2_equal_pythons(name: str) -> None:
    from bastion.data import _national

    context = getattr(_national, name)
    used_re2 = 0
    for text in _keyword_texts():
        _national._LAST_HITS.clear()
        fast = _national._keyword_hits(context, text)
        assert fast == [m.span() for m in context.finditer(text)]
        used_re2 += len(text) >= _national._RE2_MIN_CHARS
    assert used_re2 >= 5
    assert _national._re2_keywords(context.pattern) is not None


def test_birth_word_precheck_holds_every_alternative() -> None:
    """Each alternative of BIRTH_CONTEXT starts with a literal whose every case-insensitive partner (all of
    Unicode checked, as Python's engine folds it) is in the precheck class."""
    from re import _parser  # type: ignore[attr-defined]

    from bastion.data.detectors._common import _BIRTH_CHARS, BIRTH_CONTEXT

    parsed = _parser.parse(BIRTH_CONTEXT.pattern, BIRTH_CONTEXT.flags)
    (sub,) = [av for op, av in parsed if str(op) == "SUBPATTERN"]
    (branch,) = [av for op, av in sub[3] if str(op) == "BRANCH"]
    firsts = set()
    for alternative in branch[1]:
        op, av = next((op, av) for op, av in alternative if str(op) != "AT")
        assert str(op) == "LITERAL", alternative
        firsts.add(chr(av))
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    partners = set(re.findall("(?i)[" + "".join(map(re.escape, sorted(firsts))) + "]", everything))
    assert firsts <= partners
    assert all(_BIRTH_CHARS.fullmatch(c) for c in partners), sorted(
        c for c in partners if not _BIRTH_CHARS.fullmatch(c)
    )


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="bornBIRTHdDoOgGeEnNé.le \x00生出생x1", max_size=40), lo=st.integers(0, 40))
def test_birth_word_equals_the_search(text: str, lo: int) -> None:
    from bastion.data.detectors._common import BIRTH_CONTEXT, birth_word

    hi = len(text)
    assert birth_word(text, lo, hi) == (BIRTH_CONTEXT.search(text, lo, hi) is not None)


def test_gate_without_re2_runs_every_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "re2", None)  # ``import re2`` now raises ImportError
    gate = Gate(all_detectors())
    assert gate.alive("plain words only, nothing else " * 100) is None
