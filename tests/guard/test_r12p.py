"""Round 12 (guard16p): the r12p benign speaker-prefix look-alikes are split by family and by held-out
language, every row starts some line with a speaker prefix, and ``train_guard.py --r12p K`` is opt-in."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_guard

from bastion.guard import _train_extra

PREFIX = re.compile(r"(?:^|\s)[A-Za-zÀ-ÿ]+ ?:", re.MULTILINE)


def test_r12p_splits_never_share_a_family_a_text_or_a_held_out_language() -> None:
    rows = _train_extra.prefix_rows()
    t = _train_extra.load_tables(_train_extra.PREFIX_TABLES)
    assert rows and all(r["label"] == 0 and r["set"] == _train_extra.PREFIX_SET for r in rows)
    by_family: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        by_family.setdefault((r["family"], r["lang"]), set()).add(r["split"])
    assert all(len(s) == 1 for s in by_family.values())
    train_families = {r["family"] for r in rows if r["split"] == "train"}
    assert not train_families & {f for f, s in t["family_split"].items() if s != "train"}
    assert not any(r["lang"] in t["held_out"] and r["split"] != "test" for r in rows)
    texts: dict[str, set[str]] = {}
    for r in rows:
        texts.setdefault(r["text"], set()).add(r["split"])
    assert all(len(s) == 1 for s in texts.values())
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(PREFIX.search(r["text"]) for r in rows)
    assert any("\n" not in r["text"] for r in rows) and any("\n" in r["text"] for r in rows)


def test_r12p_figures_use_their_own_tables() -> None:
    rows = _train_extra.prefix_rows()
    figs = _train_extra.figures(rows, [r["split"] == "val" for r in rows], _train_extra.PREFIX_TABLES)
    n_val = sum(r["split"] == "val" for r in rows)
    assert figs["val families"] == (n_val, n_val)
    assert figs["held-out languages (every family)"] == (0, sum(r["lang"] == "pt" for r in rows))


def test_r12p_user_rows_are_opt_in_and_train_families_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert train_guard.R12P_REPEAT == 0 and train_guard.R11H_REPEAT == 0
    assert train_guard.r11_user_rows() == []
    monkeypatch.setattr(train_guard, "R12P_REPEAT", 2)
    rows = train_guard.r11_user_rows()
    train = [r for r in _train_extra.prefix_rows() if r["split"] == "train"]
    assert len(rows) == 2 * len(train) and all(r["source"] == _train_extra.PREFIX_SOURCE for r in rows)
    assert all(r["split"] == "train" for r in rows)
