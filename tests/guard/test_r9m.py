"""Round-9m multilingual data (scripts/guard_r9m.py): family and held-out-language splits."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from guard_r9m import figures, load_tables, r9m_rows

REQUIRED = set(
    [
        "fr",
        "de",
        "es",
        "it",
        "pt",
        "nl",
        "pl",
        "ru",
        "uk",
        "tr",
        "ar",
        "fa",
        "hi",
        "bn",
        "ja",
        "zh",
        "ko",
        "vi",
        "id",
        "th",
        "sw",
        "he",
        "el",
        "cs",
        "ro",
        "sv",
    ]
)  # the brief's list


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return r9m_rows()


def test_every_required_language_has_every_family_filled(rows: list[dict]) -> None:
    t = load_tables()
    assert set(t["langs"]) >= REQUIRED
    for spec in t["langs"].values():
        assert (len(spec["A"]), len(spec["B"])) == (9, 11)
    assert not [r for r in rows if "{" in r["text"] or "}" in r["text"]]
    per_lang = defaultdict(lambda: [0, 0])
    for r in rows:
        per_lang[r["lang"]][r["label"]] += 1
    for benign, attacks in per_lang.values():  # about as many benign prompts as attacks in each language
        assert 0.7 <= benign / attacks <= 1.0


def test_no_family_spans_two_splits(rows: list[dict]) -> None:
    held = set(load_tables()["held_out"])
    splits = defaultdict(set)
    for r in rows:
        if r["lang"] not in held:
            splits[r["family"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values()), splits
    assert {next(iter(s)) for s in splits.values()} == {"train", "test"}


def test_held_out_languages_never_train_or_calibrate(rows: list[dict]) -> None:
    held = set(load_tables()["held_out"])
    assert len(held) == 5
    assert {r["split"] for r in rows if r["lang"] in held} == {"test"}
    train_langs = {r["lang"] for r in rows if r["split"] != "test"}
    assert not train_langs & held


def test_no_text_in_two_splits(rows: list[dict]) -> None:
    by_text = defaultdict(set)
    for r in rows:
        by_text[r["text"]].add(r["split"])
    assert all(len(s) == 1 for s in by_text.values())


def test_figures_count_the_right_rows(rows: list[dict]) -> None:
    test = [r for r in rows if r["split"] == "test"]
    out = figures(test, [r["label"] == 1 for r in test])  # a perfect detector
    for name, (hits, n) in out.items():
        assert n > 0
        assert hits == (n if "attacks" in name else 0)
