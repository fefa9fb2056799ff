"""Round 15 of the theft defence (issue 20, fix20ad): the fan-in counted over a consumer's last anchors, not
its last narrow steps (``_theft_company``). attack20d's ``narrow`` — 7 1-3-pixel probes off each anchor
on its most important pixels, anchor after anchor — touched each pixel off at most 8 other anchors in the
64-79-step window, below the round-11 fan-in (9-12): first flagged at 460-1,600 rows. Counted over the last
12-14 anchors with narrow steps, its pixels are each touched off half of them; a client that re-sends inputs
with a glitch on 1-3 random pixels touches a pixel off at most 4-7 of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.serve._theft_company import Company
from bastion.serve.theft import DefendedModel
from bastion.watermark.keys import WatermarkKey


def _defence(kit: Any, digits: Any, seed: int) -> Any:
    key = WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32))
    return kit.digits_defence(digits, key, predict=True)


def _send(served: DefendedModel, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 20):
        served.predict_proba(rows[start : start + 20])


def _top_pixels(digits: Any, x: np.ndarray, size: float, n: int = 21) -> np.ndarray:
    """Each row's ``n`` pixels whose step of ``size`` moves the model's answer most (an oracle surrogate's
    top-gradient pixels: what attack20d's surrogate approximates)."""
    p0 = np.asarray(digits.adapter.predict_proba(x))
    pull = np.zeros(x.shape)
    for f in range(x.shape[1]):
        y = x.copy()
        y[:, f] = np.clip(y[:, f] + size, 0.0, 1.0)
        pull[:, f] = np.abs(np.asarray(digits.adapter.predict_proba(y)) - p0).sum(axis=1)
    return np.argsort(-pull, axis=1, kind="stable")[:, :n]


def _narrow(digits: Any, seeds: np.ndarray, size: float, per_anchor: int = 7) -> np.ndarray:
    """attack20d ``narrow``: off each seed in turn, ``per_anchor`` probes on 1-3 of its top pixels each (none
    twice), signs at random, each probe of norm ``size``."""
    rng = np.random.default_rng(11)
    top = _top_pixels(digits, seeds, size)
    rows = []
    for s, order in zip(seeds, top, strict=True):
        used = 0
        for _ in range(per_anchor):
            m = int(rng.integers(1, 4))
            feats = order[used : used + m]
            used += m
            step = np.zeros_like(s)
            step[feats] = rng.choice([-1.0, 1.0], m)
            rows.append(np.clip(s + step * size / np.linalg.norm(step), 0.0, 1.0))
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("spread", [True, False])
def test_a_few_probes_off_each_anchor_on_its_top_pixels_are_flagged(
    kit: Any, digits: Any, spread: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 seeds, then 7 narrow probes off each seed on its most important pixels. Counted by anchors: flagged
    within 300 rows; counted by steps only (the round-11 fan-in, ``spread`` off): not within 300."""
    if not spread:
        monkeypatch.setattr(Company, "_spread", lambda self, w, anchor, feats: (0, 0))
    guard = _defence(kit, digits, seed=21)
    size = 0.5 * (guard._resend_tau + guard._near_tau)
    served = DefendedModel(digits.adapter, guard, consumers=("narrow", "addr:192.0.2.41"))
    seeds = np.asarray(digits.x_test, dtype=np.float32)[
        np.random.default_rng(3).permutation(len(digits.x_test))[:100]
    ]
    _send(served, np.concatenate([seeds, _narrow(digits, seeds[:40], size)]))
    if spread:
        assert served.first_flag is not None and served.first_flag <= 300, served.first_flag
        assert guard.flags()[0]["reason"] == "small-steps"
    else:
        assert served.first_flag is None or served.first_flag > 300, served.first_flag


def test_glitched_resends_stay_unflagged(kit: Any, digits: Any) -> None:
    """A camera that re-sends each input three times, each copy with a glitch on 1-3 random pixels (inside
    the small-steps band): 2,000 rows, never flagged, and no narrow step of it crowded by anchors."""
    guard = _defence(kit, digits, seed=22)
    lo, hi = guard._resend_tau, guard._near_tau
    served = DefendedModel(digits.adapter, guard, consumers=("camera", "addr:192.0.2.42"))
    x = np.asarray(digits.x_test, dtype=np.float32)
    rng = np.random.default_rng(5)
    rows = []
    while len(rows) < 2000:
        h = x[int(rng.integers(len(x)))]
        for _ in range(3):
            g = h.copy()
            f = rng.choice(len(h), int(rng.integers(1, 4)), replace=False)
            v = rng.standard_normal(len(f))
            g[f] += rng.uniform(1.05 * lo, 0.95 * hi) * v / np.linalg.norm(v)
            rows.append(np.clip(g, 0.0, 1.0))
    _send(served, np.asarray(rows[:2000], dtype=np.float32))
    assert served.first_flag is None, guard.flags()
