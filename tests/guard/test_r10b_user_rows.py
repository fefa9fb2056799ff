"""Round 10b: AI-addressed lines for the user model (train_guard.py --r9-user-units, --r8-user-lines)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from guard_r8 import r8_rows
from guard_r9 import prefix_rows
from train_guard import r10b_user_rows


def test_off_by_default() -> None:
    assert r10b_user_rows() == []


def test_only_r8_train_families_and_never_the_prefix_set() -> None:
    rows = r10b_user_rows(units=1, lines=1)
    held = {r["group"] for r in r8_rows() if r["split"] != "train"}
    assert rows and all(r["split"] == "train" and r["group"] not in held for r in rows)
    prefix = {r["text"] for r in prefix_rows()}
    assert not prefix & {r["text"] for r in rows}
    assert not any(str(r["source"]).startswith("bastion:r9") for r in rows)


def test_units_hold_the_planted_line_and_benign_segments() -> None:
    units = r10b_user_rows(units=1)
    positives = [r for r in units if r["label"] == 1]
    assert positives and len(units) > 2 * len(positives)  # every document's other segments are negatives
    assert all(r.get("segment") for r in units)
    assert len(r10b_user_rows(units=2)) == 2 * len(units)
    lines = r10b_user_rows(lines=3)
    assert {r["set"] for r in lines} == {"r8-attack", "r8-overdefence"} and len(lines) % 3 == 0
