"""Round-6 outsider-style data (scripts/guard_r6.py, data/guard/r6_outsider.json): splits, kinds, format."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

guard_r6 = pytest.importorskip("guard_r6")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return guard_r6.r6_rows()


def test_composition_is_deterministic(rows: list[dict]) -> None:
    assert guard_r6.r6_rows() == rows


def test_every_group_and_part_sits_in_the_rows_split(rows: list[dict]) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits[r["group"]].add(r["split"])
        for part in r.get("parts", []):
            assert guard_r6.split_of(part) == r["split"], (r["group"], part)
    assert all(len(s) == 1 for s in splits.values())
    assert Counter(r["split"] for r in rows).keys() == {"train", "val", "test"}


def test_no_test_injection_or_prompt_reaches_training(rows: list[dict]) -> None:
    tables = guard_r6.load_tables()
    train_text = "\n".join(r["text"] for r in rows if r["split"] == "train")
    for i, inj in enumerate(tables["injections"]):
        if guard_r6.split_of(f"r6-inj-{i}") == "test":
            # the line as written (wrapped forms escape or prefix it, so check a stretch from its middle)
            probe = inj["text"][len(inj["text"]) // 3 :][:40]
            assert probe not in train_text, inj["text"]
    test_prompts = {r["text"] for r in rows if r["split"] == "test" and r["set"] != "r6-documents"}
    assert not test_prompts & {r["text"] for r in rows if r["split"] != "test"}


def test_coverage_of_kinds_styles_and_languages() -> None:
    tables = guard_r6.load_tables()
    kinds = {c["kind"] for c in tables["carriers"]}
    assert {
        "email",
        "webpage",
        "review",
        "ticket",
        "code",
        "readme",
        "csv",
        "calendar",
        "pdf",
        "chat",
    } <= kinds
    assert "json" in kinds
    styles = {i["style"] for i in tables["injections"]}
    assert {"imperative", "fake-system", "when-summarising", "exfiltration", "tool-call"} <= styles
    assert {"ai-agents", "polite", "other-language"} <= styles
    langs = set(tables["multilingual"])
    assert {"tr", "de", "es", "fr", "it", "pt", "ru", "zh", "ja", "ar", "fa", "pl"} <= langs
    assert len(langs) >= 20
    assert all(len(v["attacks"]) == 7 and len(v["benign"]) == 4 for v in tables["multilingual"].values())


def test_embedded_lines_keep_the_carriers_format(rows: list[dict]) -> None:
    tables = guard_r6.load_tables()
    json_bodies = [c["text"].split("{slot}") for c in tables["carriers"] if c["wrap"] == "json"]
    csv_bodies = [c["text"].split("{slot}") for c in tables["carriers"] if c["wrap"] == "csv"]
    checked = Counter()
    for r in rows:
        if r["set"] not in ("r6-indirect", "r6-documents"):
            continue
        if any(r["text"].startswith(a) and r["text"].endswith(b) for a, b in json_bodies):
            json.loads(r["text"])  # an injection inside a JSON string keeps the document valid JSON
            checked["json"] += 1
        if any(r["text"].startswith(a) and r["text"].endswith(b) for a, b in csv_bodies):
            table = list(csv.reader(io.StringIO(r["text"])))
            assert len({len(line) for line in table if line}) == 1  # same number of cells on every line
            checked["csv"] += 1
    assert checked["json"] >= 10 and checked["csv"] >= 5


def test_both_labels_in_every_split(rows: list[dict]) -> None:
    for split in ("train", "val", "test"):
        sets = Counter((r["set"], r["label"]) for r in rows if r["split"] == split)
        assert sets[("r6-indirect", 1)] >= 20 and sets[("r6-documents", 0)] >= 20, split
        assert sets[("r6-multilingual", 1)] >= 20 and sets[("r6-multilingual-benign", 0)] >= 10, split
