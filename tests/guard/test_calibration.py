"""Out-of-fold user calibration (bastion.guard._calibration, train_guard.py --oof-calibrate)."""

from __future__ import annotations

import numpy as np

from bastion.guard import _calibration


def _rows() -> list[dict]:
    rows = [{"text": f"benign {g}-{i}", "label": 0, "group": f"g{g}"} for g in range(12) for i in range(3)]
    rows += [{"text": f"attack {i}", "label": 1, "group": f"a{i}"} for i in range(5)]
    return rows + rows[:6]  # the first two groups repeated, as the recipe repeats rows


def test_every_pooled_row_is_scored_by_a_model_that_never_saw_its_group() -> None:
    rows = _rows()
    fits: list[set[str]] = []

    def fit(train: list[dict]) -> set[str]:
        fits.append({r["group"] for r in train})
        return {r["text"] for r in train}

    def score(model: set[str], texts: list[str]) -> np.ndarray:
        return np.asarray([1.0 if t in model else 0.0 for t in texts])

    out = _calibration.oof_scores(rows, lambda r: r["label"] == 0, folds=4, fit=fit, score=score)
    pool = _calibration.pool_of(rows, lambda r: r["label"] == 0)
    assert len(pool) == len(out) == 36  # repeated rows once
    assert not out.any()  # no held row (nor a copy of it) was in its model's training rows
    assert 2 <= len(fits) <= 4
    assert all({f"a{i}" for i in range(5)} <= groups for groups in fits)  # attacks always trained on
    for r in pool:  # a group is held together
        assert _calibration.fold_of(r, 4) == _calibration.fold_of(pool[3 * int(r["group"][1:])], 4)


def test_pooled_threshold_is_the_quantile_of_val_and_out_of_fold_scores() -> None:
    val = np.asarray([0.9] * 2 + [0.0] * 98)  # two high val prompts: alone, they set the 0.99 quantile
    oof = np.zeros(900)
    assert _calibration.user_threshold(val, np.zeros(0)) > 0.5
    assert _calibration.user_threshold(val, oof) == 0.1  # the floor: 2 of 1,000 are under 1 %
    assert _calibration.user_threshold(val, oof, target_fpr=0.0005) > 0.5
