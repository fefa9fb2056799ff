"""Round 9 of the theft defence (issue 20, fix20r): the mixtures test (:mod:`bastion.serve._theft_mix`).

The cold review's adaptive near-manifold attacker (F1) sends its natural seed, then Dirichlet mixtures of
2-3 near seed rows of one label and a few boundary probes ``λa + (1-λ)b``, rounded to the data's grid, each
kept a gap above the small-steps radius from its earlier rows: no small steps, no shift, no tail. Before,
it was flagged within 300 rows in 2 of 46 runs. Every synthetic row lies (up to rounding) in the convex hull
of rows the same consumer sent before; a natural row, a noisy re-send and a drifting series do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.serve._theft_mix import hull_distance
from bastion.serve.theft import TheftPolicy
from bastion.watermark.keys import WatermarkKey


def _send(guard: Any, model: Any, x: np.ndarray, who: str = "jwt:c", batch: int = 20) -> int | None:
    """Rows sent when the consumer is first flagged (None: never)."""
    for start in range(0, len(x), batch):
        part = np.asarray(x[start : start + batch], dtype=np.float32)
        ans = guard.respond(consumers=(who, "addr:10.9.9.9"), x=part, proba=model.predict_proba(part))
        if ans.flagged:
            return start + len(part)
    return None


def _guard(digits: Any, kit: Any, seed: int = 21) -> Any:
    return kit.digits_defence(digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)))


def _mixer(seed_x: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The F1 attacker's synthetic rows (cross-class share 0.15, gap 0.45 x the seeds' median 1-NN)."""
    nn = np.linalg.norm(seed_x[:, None] - seed_x[None], axis=2)
    np.fill_diagonal(nn, np.inf)
    gap = 0.45 * float(np.median(nn.min(1)))
    sent, out = list(seed_x), []
    while len(out) < n:
        a = int(rng.integers(len(seed_x)))
        same = np.flatnonzero((labels == labels[a]) & (np.arange(len(seed_x)) != a))
        other = np.flatnonzero(labels != labels[a])
        if rng.uniform() < 0.15:
            b = other[np.argsort(nn[a, other])[rng.integers(3)]]
            lam = rng.uniform(0.6, 0.9)
            x = lam * seed_x[a] + (1 - lam) * seed_x[b]
        else:
            pick = rng.choice(same[np.argsort(nn[a, same])[:7]], size=int(rng.integers(1, 4)), replace=False)
            w = rng.dirichlet(np.full(len(pick) + 1, 2.0))
            x = w[0] * seed_x[a] + w[1:] @ seed_x[pick]
        x = np.round(x * 16) / 16
        if np.linalg.norm(np.asarray(sent[-600:]) - x, axis=1).min() >= gap:
            sent.append(x)
            out.append(x)
    return np.asarray(out, dtype=np.float32)


def test_the_adaptive_mixing_attacker_is_flagged_within_300_rows(digits: Any, kit: Any) -> None:
    """10 seed rows a class, then mixtures: flagged by the mixtures test before 300 rows (before: never), as
    strong evidence (a mixtures flag misinforms every row)."""
    rng = np.random.default_rng(3)
    y = digits.y_test
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in range(10)])
    seed_x = digits.x_test[idx]
    labels = digits.adapter.predict(seed_x)
    rows = np.concatenate([seed_x, _mixer(seed_x, labels, 200, rng)])
    guard = _guard(digits, kit)
    first = _send(guard, digits.adapter, rows, who="jwt:mallory")
    assert first is not None and first <= 300, first
    flag = guard._identities.get("jwt:mallory").flag
    assert flag.reason == "mixtures" and flag.score >= guard.policy.strong_score  # every row misinformed


def test_natural_streams_and_a_drifting_series_are_not_mixtures(digits: Any, kit: Any) -> None:
    """Natural held-out rows (400; 200 re-sent three times with 1 % noise) are not flagged, and a drifting
    series (each frame a step just above the small-steps radius on from the previous one, the direction
    turning slowly: it extrapolates, never interpolates) is no mixture."""
    guard = _guard(digits, kit)
    rng = np.random.default_rng(4)
    x = digits.x_test
    assert _send(guard, digits.adapter, x[rng.permutation(len(x))[:400]], who="jwt:natural") is None
    noisy = np.repeat(x[rng.integers(0, len(x), 200)], 3, axis=0)
    noisy = np.clip(noisy + rng.normal(0.0, 0.01, noisy.shape), 0, 1)
    assert _send(guard, digits.adapter, noisy, who="jwt:noisy") is None
    frame = x[0].astype(np.float64)
    drift, step = [], rng.normal(0.0, 1.0, frame.shape)
    length = 1.1 * guard._near_tau  # above the small-steps radius (smaller steps are that test's business)
    for _ in range(300):
        step = 0.8 * step / np.linalg.norm(step) + 0.2 * rng.normal(0.0, 1.0, frame.shape) / 8.0
        frame = frame + length * step / np.linalg.norm(step)
        drift.append(frame.copy())
    _send(
        guard, digits.adapter, np.asarray(drift), who="jwt:drift"
    )  # it leaves the data: the tail's business
    flag = guard._identities.get("jwt:drift").flag
    assert flag is None or flag.reason != "mixtures"
    for who in ("jwt:natural", "jwt:noisy", "jwt:drift"):  # far from the flag (log10 p <= about -9)
        evidence = guard._stats(guard._identities.get(who))[1]
        assert evidence.get("mixture_log10_p", -99) > -4, (who, evidence)


def test_hull_distance_and_policy() -> None:
    """The simplex solve: a point inside the hull is at 0, one beyond a vertex at its distance to it."""
    rng = np.random.default_rng(0)
    nbrs = rng.normal(size=(2, 6, 10))
    inside = rng.dirichlet(np.ones(6)) @ nbrs[0]
    outside = nbrs[1, 0] + 5.0 * (nbrs[1, 0] - nbrs[1].mean(0))
    d = hull_distance(np.stack([inside, outside]), nbrs)
    assert d[0] < 0.02
    assert d[1] <= np.linalg.norm(outside - nbrs[1, 0]) + 1e-6 and d[1] > 0.5 * np.linalg.norm(
        outside - nbrs[1, 0]
    )
    with pytest.raises(InvalidInput):
        TheftPolicy(mix_floor=0.0)
