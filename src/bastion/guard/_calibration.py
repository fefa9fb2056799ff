"""Out-of-fold user-channel calibration (round 10, issue 16; scikit-learn, never imported by the runtime).

The shipped rule sets the user threshold at the 0.99 quantile of about 440 benign val prompts: the
fifth-highest score, so every change of the training data moved it (round 9m: 0.478, 0.320, 0.308 for three
data versions). ``oof_scores`` adds the benign user-channel *training* prompts, each scored by a model trained
without its fold (folds by group, so no paraphrase of a held prompt is trained on), which puts the quantile on
about 2,700 prompts (the 27th-highest score) instead of 437.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Row = Mapping[str, Any]


def fold_of(row: Row, folds: int) -> int:
    """The fold of a row: a hash of its group (its text when it has none)."""
    key = str(row.get("group") or row["text"]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % folds


def pool_of(train: Sequence[Row], pick: Callable[[Row], bool]) -> list[Row]:
    """The distinct rows of ``train`` (by identity: a repeated row once) that ``pick`` selects, in order."""
    return list({id(r): r for r in train if pick(r)}.values())


def oof_scores(
    train: Sequence[Row],
    pick: Callable[[Row], bool],
    *,
    folds: int,
    fit: Callable[[list[Row]], Any],
    score: Callable[[Any, list[str]], np.ndarray],
) -> np.ndarray:
    """Scores of ``pool_of(train, pick)`` (in that order), each from a model fitted on ``train`` without
    that row's fold (every copy of a repeated row leaves with it)."""
    pool = pool_of(train, pick)
    out = np.zeros(len(pool))
    for k in range(folds):
        held = [i for i, r in enumerate(pool) if fold_of(r, folds) == k]
        if not held:
            continue
        held_ids = {id(pool[i]) for i in held}
        model = fit([r for r in train if id(r) not in held_ids])
        out[held] = np.asarray(score(model, [str(pool[i]["text"]) for i in held]), dtype=np.float64)
    return out


def user_threshold(val_scores: np.ndarray, oof: np.ndarray, *, target_fpr: float = 0.01) -> float:
    """The user threshold: the ``1 - target_fpr`` quantile of the val and out-of-fold scores together."""
    pooled = np.concatenate([np.asarray(val_scores, dtype=np.float64), oof])
    return max(0.1, float(np.quantile(pooled, 1.0 - target_fpr)))
