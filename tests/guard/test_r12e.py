"""Round 12e (guard16q): the r12e benign code/config snippet look-alikes are split by family and by held-out
language and carry a trigger identifier; ``train_guard.py --r12e K`` is opt-in, and ``--oof-base`` keeps every
added look-alike negative (r11h, r12p, r12e) out of the models that score the user-threshold pool."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_guard

from bastion.guard import _train, _train_extra

TRIGGER = re.compile(r"ignor|override|system|prompt|force|disable|important", re.IGNORECASE)


def test_r12e_splits_never_share_a_family_a_text_or_a_held_out_language() -> None:
    rows = _train_extra.snippet_rows()
    t = _train_extra.load_tables(_train_extra.SNIPPET_TABLES)
    assert rows and all(r["label"] == 0 and r["set"] == _train_extra.SNIPPET_SET for r in rows)
    by_family: dict[tuple[str, str], set[str]] = {}
    texts: dict[str, set[str]] = {}
    for r in rows:
        by_family.setdefault((r["family"], r["lang"]), set()).add(r["split"])
        texts.setdefault(r["text"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_family.values()) and all(len(s) == 1 for s in texts.values())
    assert not any(r["lang"] in t["held_out"] and r["split"] != "test" for r in rows)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(TRIGGER.search(r["text"]) and "{c}" not in r["text"] for r in rows)
    figs = _train_extra.figures(rows, [r["split"] == "val" for r in rows], _train_extra.SNIPPET_TABLES)
    assert figs["val families"][0] == figs["val families"][1] > 0


def test_r12e_user_rows_are_opt_in_and_train_families_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert train_guard.R12E_REPEAT == 0 and not train_guard.OOF_BASE
    assert train_guard.r11_user_rows() == []
    monkeypatch.setattr(train_guard, "R12E_REPEAT", 3)
    rows = train_guard.r11_user_rows()
    train = [r for r in _train_extra.snippet_rows() if r["split"] == "train"]
    assert len(rows) == 3 * len(train) and all(r["source"] == _train_extra.SNIPPET_SOURCE for r in rows)


@pytest.mark.parametrize("base", [False, True])
def test_oof_base_keeps_look_alikes_out_of_the_threshold_models(
    monkeypatch: pytest.MonkeyPatch, base: bool
) -> None:
    old = [
        {"text": f"benign prompt {i}", "label": 0, "source": "s", "group": f"g{i}", "set": "benign"}
        for i in range(12)
    ]
    look = [r for r in _train_extra.snippet_rows() if r["split"] == "train"][:6]
    look += [r for r in _train_extra.prefix_rows() if r["split"] == "train"][:6]
    fitted: list[list[dict[str, Any]]] = []

    def fit(rows: list[dict[str, Any]], **_: Any) -> str:
        fitted.append(list(rows))
        return "fold-model"

    scored: list[Any] = []

    def scores(model: Any, texts: list[str]) -> np.ndarray:
        scored.append(model)
        return np.zeros(len(texts))

    monkeypatch.setattr(_train, "fit", fit)
    monkeypatch.setattr(_train, "scores", scores)
    monkeypatch.setattr(train_guard, "OOF_BASE", base)
    train_guard.oof_user_threshold("final-model", old + look, ["hello"], 3, 0)
    leaked = [any(r["source"] in _train_extra.LOOKALIKE_SOURCES for r in rows) for rows in fitted]
    assert fitted and all(leaked) != base and any(leaked) != base
    assert (scored[-1] == "final-model") != base  # the val prompts: the final model only without --oof-base
    assert _train_extra.without_lookalikes(old + look) == old
