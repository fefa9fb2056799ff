"""Round 8 of the theft defence (issue 20, fix20o): the newcomers' pool and the same inputs at other gains.

Many honest newcomers send the same public inputs, each through its own scanner: the same digit at another
brightness (x 0.8, x 1.25 clipped) lies within the small-steps radius of the copy another newcomer sent, so
the pool read them as one client's small steps and was flagged (``benchmarks``: a dimmer scanner after 30
newcomers, 4/10 streams, -1.20 pp). A pooled row that is an earlier pooled row at another gain now counts
once, like a re-send (:func:`bastion.serve._theft_pool.rescans`); a Sybil's small steps still count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve._theft_pool import NEWCOMERS, rescans
from bastion.watermark.keys import WatermarkKey


def _send(guard: Any, model: Any, x: np.ndarray, who: str, addr: str) -> bool:
    flagged = False
    for start in range(0, len(x), 20):
        part = np.asarray(x[start : start + 20], dtype=np.float32)
        flagged |= guard.respond(consumers=(who, addr), x=part, proba=model.predict_proba(part)).flagged
    return flagged


def _guard(digits: Any, kit: Any) -> Any:
    return kit.digits_defence(digits, WatermarkKey.from_secret(np.random.default_rng(11).bytes(32)))


def test_newcomers_sending_the_same_inputs_at_other_gains_do_not_flag_the_pool(digits: Any, kit: Any) -> None:
    """20 newcomers send natural test rows as they are, then 10 brighter (x 1.25, clipped) and 5 dimmer
    (x 0.8), 60 rows each. Before: the brighter copies of rows already pooled counted as small steps (the
    pool's near rows grew by ~3 a newcomer) and the pool was flagged after 9 brighter newcomers, answering
    every newcomer as flagged; now none of those copies is counted."""
    guard = _guard(digits, kit)
    x_test = np.asarray(digits.x_test, dtype=np.float32)
    flagged = []
    for gain, accounts in ((1.0, 20), (1.25, 10), (0.8, 5)):
        for k in range(accounts):
            rows = np.clip(x_test[np.random.default_rng(k).integers(0, len(x_test), 60)] * gain, 0.0, 1.0)
            who, addr = f"jwt:g{gain}-{k}", f"addr:10.{int(gain * 8)}.0.{k}"
            flagged.append(_send(guard, digits.adapter, rows, who, addr))
    pool = guard._identities.get(NEWCOMERS)
    assert pool.flag is None and not any(flagged)
    assert sum(pool.near) <= 2, sum(pool.near)


def test_rescans_are_gain_copies_only(digits: Any, kit: Any) -> None:
    """A copy at another gain (clipped at the row's own range) is a re-scan; a small step is not."""
    guard = _guard(digits, kit)
    x = np.asarray(digits.x_test[:30], dtype=np.float32)
    pool = guard._new()
    guard._nearest(pool, x)
    rng = np.random.default_rng(0)
    step = rng.normal(0.0, 1.0, x.shape)
    step *= 0.5 * guard._near_tau / np.linalg.norm(step, axis=1, keepdims=True)
    assert rescans(guard, pool, np.clip(x * 1.25, 0, 1)).all()
    assert rescans(guard, pool, x * 0.7).all()
    assert not rescans(guard, pool, np.clip(x + step, 0, 1)).any()


def test_a_sybil_of_shared_seeds_at_other_gains_and_small_steps_is_still_flagged(
    digits: Any, kit: Any
) -> None:
    """An attacker who knows the exemption: every account sends the same seed digits, copies of them at
    random gains (not counted) and small steps from them (counted): the pool is still flagged."""
    guard = _guard(digits, kit)
    x_test = np.asarray(digits.x_test, dtype=np.float32)
    seeds = x_test[:8]
    rng = np.random.default_rng(7)
    first = None
    for a in range(40):
        gains = np.clip(seeds * rng.uniform(0.7, 1.3, (len(seeds), 1)), 0.0, 1.0)
        base = seeds[rng.integers(0, len(seeds), 20)]
        step = rng.normal(0.0, 1.0, base.shape)
        step *= 0.5 * guard._near_tau / np.linalg.norm(step, axis=1, keepdims=True)
        rows = np.concatenate([seeds, gains, np.clip(base + step, 0.0, 1.0)])
        if _send(guard, digits.adapter, rows, f"jwt:sybil{a}", f"addr:203.0.{a}.1"):
            first = (a + 1) * len(rows)
            break
    assert first is not None and first <= 600, first
    assert guard._identities.get(NEWCOMERS).flag is not None
