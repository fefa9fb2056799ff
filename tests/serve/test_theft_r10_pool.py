"""Round 10 of the theft defence (issue 20, fix20u): the newcomers' pool counts steps along the data.

Round 9's step test made a small step count only if it moves the served model's answer more than keyed
random-sign steps do. The newcomers' pool relates rows of *different* accounts: a Sybil's interpolations of
natural rows differ from one another along differences of natural rows, which are mostly directionless for
the model, so they became re-sends and the bench's Sybil on breast_cancer was flagged at 252-406 attacker
rows (it was 252-281). The pool now also counts a step (from the re-send radius on in) whose share in the
reference rows' top principal components reaches a keyed threshold (:class:`PoolSteps`): noisy re-sends of
the same public inputs from many fresh accounts differ by sensor noise spread over every feature, and stay
re-sends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve._theft_pool import NEWCOMERS, POOL_STEP_FPR
from bastion.serve.theft import build_defence
from bastion.watermark.keys import WatermarkKey


def _defence(kit: Any, digits: Any, seed: int = 3) -> Any:
    return kit.digits_defence(
        digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)), predict=True
    )


def _sybil(digits: Any, guard: Any, accounts: int = 40, rows: int = 20) -> list[np.ndarray]:
    """Shared seed digits, and from them steps along the data: towards another test digit of the same label,
    0.3-0.95 x the small-steps radius long (inside the re-send radius too) — same-class interpolations, which
    barely move the model's answer (directionless for the step test)."""
    rng = np.random.default_rng(5)
    x = np.asarray(digits.x_test, dtype=np.float64)
    y = digits.adapter.predict(digits.x_test)
    seeds = rng.choice(len(x), 12, replace=False)
    out = []
    for _ in range(accounts):
        a = seeds[rng.integers(0, len(seeds), rows)]
        b = np.array([rng.choice(np.flatnonzero((y == y[i]) & (np.arange(len(x)) != i))) for i in a])
        step = x[b] - x[a]
        step *= (
            rng.uniform(0.3, 0.95, (rows, 1)) * guard._near_tau / np.linalg.norm(step, axis=1, keepdims=True)
        )
        out.append(np.clip(x[a] + step, 0.0, 1.0))
    return out


def _resenders(digits: Any, sigma: float, accounts: int = 40, rows: int = 30) -> list[np.ndarray]:
    """Honest newcomers: test digits, each re-sent 3 times with sensor noise (sd ``sigma``, clipped)."""
    rng = np.random.default_rng(6)
    x = np.asarray(digits.x_test, dtype=np.float64)
    out = []
    for _ in range(accounts):
        r = np.repeat(x[rng.integers(0, len(x), rows // 3)], 3, axis=0)
        out.append(np.clip(r + rng.normal(0.0, sigma, r.shape), 0.0, 1.0))
    return out


def test_a_sybil_stepping_along_the_data_from_shared_seeds_is_flagged(kit: Any, digits: Any) -> None:
    """Before: its steps are directionless (same-class) or inside the re-send radius, so the pool counted them
    as re-sends and was never flagged in 800 rows. Now they lie along the data and count."""
    guard = _defence(kit, digits)
    first, _ = kit.send_accounts(
        guard, digits.adapter, _sybil(digits, guard), tag="sybil", batch=20, net="198.18"
    )
    assert first is not None and first <= 300, first
    assert guard._identities.get(NEWCOMERS).flag.reason == "small-steps"


def test_noisy_resenders_through_fresh_accounts_do_not_flag_the_pool(kit: Any, digits: Any) -> None:
    """Many fresh accounts re-sending shared test digits with 1-2 % sensor noise: their copies differ by
    noise, spread over every feature — not steps along the data; the pool stays unflagged."""
    for sigma in (0.01, 0.02):
        guard = _defence(kit, digits, seed=4)
        first, flagged = kit.send_accounts(
            guard, digits.adapter, _resenders(digits, sigma), tag="scanner", batch=20, net="198.18"
        )
        assert first is None and flagged == 0, (sigma, first, flagged)
        pool = guard._identities.get(NEWCOMERS)
        assert sum(pool.near) <= 0.05 * len(pool.near) + 2, (sum(pool.near), len(pool.near))


def test_the_pools_step_test_is_keyed_and_calibrated(kit: Any, digits: Any) -> None:
    """A step along the data (towards another digit) is one, a noise step of the same length is not; the
    threshold is the keyed 1 - POOL_STEP_FPR quantile for noise steps, and differs between keys."""
    a, b = _defence(kit, digits, seed=3), _defence(kit, digits, seed=8)
    ps = a._pool_steps
    x = np.asarray(digits.x_test[:200], dtype=np.float64)
    rng = np.random.default_rng(0)
    toward = x[rng.permutation(200)] - x
    noise = rng.normal(0.0, 1.0, x.shape)
    noise *= np.linalg.norm(toward, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1, keepdims=True)
    assert ps.along(x + 0.1 * toward, x).mean() > 0.8
    assert ps.along(x + 0.1 * noise, x).mean() <= 2 * POOL_STEP_FPR + 0.02
    b._pool_steps.along(x[:1], x[:1])
    assert 0.0 < ps.threshold < 1.0 and ps.threshold != b._pool_steps.threshold
    # without predict there is no step test, for the pool either: every step in the band counts, as before
    c = build_defence(
        key=WatermarkKey.from_secret(bytes(32)),
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
    )
    assert c._pool_steps is None


def test_a_step_from_the_senders_own_rows_is_judged_by_the_step_test_alone(kit: Any, digits: Any) -> None:
    """The pool counts steps along the data only off another account's rows: a single client stepping along
    the data from its own rows (a Jacobian walker's seeds and steps) is judged as the identity judges it, so
    it does not flag the pool for every newcomer."""
    guard = _defence(kit, digits)
    ps = guard._pool_steps
    x = np.asarray(digits.x_test[:50], dtype=np.float64)
    toward = 0.1 * (x[np.random.default_rng(1).permutation(50)] - x)
    mine = guard._new()
    guard._nearest(mine, x)  # the sender counted these rows before
    ps.sender(mine, np.zeros((0, x.shape[1]), dtype=np.float32))
    assert not ps.along(x + toward, x).any()
    ps.sender(guard._new(), (x + toward).astype(np.float32))  # ... or sends them in this request
    assert not ps.along(x + 2 * toward, x + toward).any()
    ps.sender(guard._new(), np.zeros((0, x.shape[1]), dtype=np.float32))  # another account's rows
    assert ps.along(x + toward, x).mean() > 0.8
