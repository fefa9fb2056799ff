"""Round-8 guard data (scripts/guard_r8.py): programmatic documents, split by family."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

guard_r8 = pytest.importorskip("guard_r8")
tables = pytest.importorskip("guard_r8_tables")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return guard_r8.r8_rows()


def test_rows_are_deterministic_and_cover_every_set_and_split(rows: list[dict]) -> None:
    assert guard_r8.r8_rows() == rows
    counts = Counter((r["set"], r["split"]) for r in rows)
    for set_ in guard_r8.USER_SETS + guard_r8.DOC_SETS:
        assert {s for (t, s) in counts if t == set_} == {"train", "val", "test"}, set_
    assert counts["r8-indirect", "test"] >= 100 and counts["r8-documents", "test"] >= 100


def test_a_family_and_a_topic_never_span_splits(rows: list[dict]) -> None:
    by_group: dict[str, set[str]] = defaultdict(set)
    by_topic: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_group[r["group"]].add(r["split"])
        for t in r.get("topics", []):
            by_topic[t].add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())
    assert all(len(s) == 1 for s in by_topic.values()) and len(by_topic) == len(tables.TOPICS)
    # every injection kind has a family held out for test, so the test figure covers each kind
    inj, ben, _ = guard_r8.splits()
    for kind, families in tables.INJECTIONS.items():
        assert "test" in {inj[f[0]] for f in families}, kind
        assert "train" in {inj[f[0]] for f in families}, kind
    for kind, bfamilies in tables.BENIGN.items():
        assert {ben[f[0]] for f in bfamilies} >= {"test", "train"}, kind


def test_no_test_line_or_template_occurs_in_training(rows: list[dict]) -> None:
    inj, ben, _ = guard_r8.splits()
    train_templates = {
        t for fs in tables.INJECTIONS.values() for name, _, _, ts in fs if inj[name] == "train" for t in ts
    } | {t for fs in tables.BENIGN.values() for name, _, ts in fs if ben[name] == "train" for t in ts}
    test_templates = {
        t for fs in tables.INJECTIONS.values() for name, _, _, ts in fs if inj[name] == "test" for t in ts
    }
    assert not train_templates & test_templates
    train_text = "\n".join(r["text"] for r in rows if r["split"] == "train")
    for r in rows:
        if r["split"] == "test" and r["set"] == "r8-attack":
            assert r["text"][:60] not in train_text


def test_documents_vary_along_every_axis(rows: list[dict]) -> None:
    docs = [r for r in rows if r["set"] in guard_r8.DOC_SETS and r["split"] == "train"]
    assert {r["doc"] for r in docs} == set(guard_r8.KINDS)
    assert len({r["lang"] for r in docs if "lang" in r}) >= 4
    injected = [r for r in rows if r["set"] == "r8-indirect"]
    assert {r["kind"] for r in injected} == set(tables.INJECTIONS)
    lengths = sorted(len(r["text"]) for r in docs)
    assert lengths[len(lengths) // 10] < 400 < 1200 < lengths[-len(lengths) // 10]


def test_composed_lines_are_training_only_and_both_labels(rows: list[dict]) -> None:
    composed = [r for r in rows if r.get("composed")]
    assert composed and {r["split"] for r in composed} == {"train"}
    assert Counter(r["label"] for r in composed) == Counter({0: len(composed) // 2, 1: len(composed) // 2})
    inj, _, _ = guard_r8.splits()
    held = [
        t[:40]
        for fs in tables.INJECTIONS.values()
        for name, _, _, ts in fs
        if inj[name] != "train"
        for t in ts
        if "{" not in t[:40]
    ]
    text = "\n".join(r["text"] for r in composed)
    assert not [h for h in held if h in text]


def test_snippets_are_windows_around_the_line(rows: list[dict]) -> None:
    train = [r for r in rows if r["split"] == "train" and r["set"] in guard_r8.DOC_SETS]
    cut = guard_r8.snippets(train)
    assert len(cut) >= 0.9 * len(train)
    for r in cut:
        assert any(r["text"] in x["text"] for x in train if x["group"] == r["group"])
        if r.get("line"):
            assert r["line"][:20] in r["text"]
            assert len(r["text"]) <= max(192, min(len(r["line"]), 384))
