"""The engine's fast path (the RE2 chunk gate, ``detectors/_gate.py``) finds exactly what the full path finds.

The gate skips a detector on a text where its *relaxed* pattern (assertions dropped, classes widened) has no
RE2 match. That is exact only if every relaxed pattern matches a superset of its Python pattern: checked
here per detector on generated texts, per character class over all of Unicode, and end to end (fast path vs
full path) on the evaluation corpus and on freshly generated distinct rows.
"""

from __future__ import annotations

import csv
import importlib.util
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


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_fast_path_equals_full_path_on_distinct_generated_rows(seed: int) -> None:
    header, rows = _generate(400, seed)  # > 2 x the sample: sample-and-confirm and the gate both engage
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
@settings(max_examples=60, deadline=None)
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
