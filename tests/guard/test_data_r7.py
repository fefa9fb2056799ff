"""Round-7 chat turns (scripts/guard_r7.py, data/guard/r7_chat.json): benign, grouped, with a test fifth."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

guard_r7 = pytest.importorskip("guard_r7")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return guard_r7.r7_rows()


def test_rows_are_benign_deterministic_and_split_three_ways(rows: list[dict]) -> None:
    assert guard_r7.r7_rows() == rows
    assert {r["label"] for r in rows} == {0}
    plain = guard_r7.r7_rows(augment=False)
    assert len(plain) >= 300
    counts = Counter(r["split"] for r in plain)
    assert counts.keys() == {"train", "val", "test"} and counts["test"] >= 0.1 * len(plain)


def test_a_group_never_straddles_splits(rows: list[dict]) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    # "answer", "Answer" and "answer?" are one group, so a variant cannot leak a test row into training
    assert guard_r7.group_of("Answer?") == guard_r7.group_of("answer") == guard_r7.group_of(" ANSWER ")


def test_variants_and_two_line_messages_are_training_only(rows: list[dict]) -> None:
    plain = {r["text"] for r in guard_r7.r7_rows(augment=False)}
    extra = [r for r in rows if r["text"] not in plain]
    assert extra and all(r["split"] == "train" for r in extra)
    held = {r["text"].casefold() for r in rows if r["split"] != "train"}
    assert not any(r["text"].casefold() in held for r in extra)
