"""Round 11 of the theft defence (issue 20, fix20w): the newcomers' pool and blurred copies, and a shifted
mixing Sybil.

Honest newcomers sending the same public images, each through its own camera focus, put blurred copies of one
image in each other's hull and within each other's small-steps radius: the pool read them as a mixing Sybil
(attack20d: 32 of 40 accounts answered as flagged). A copy through a non-negative isotropic kernel now counts
once, as a copy at another gain did (:mod:`bastion.serve._theft_family`). A Sybil whose mixtures are also
shifted (ghost digits) is judged on both tests together (:func:`bastion.serve._theft_pool.combined`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import log_ndtr

from bastion.serve._theft_family import filter_tolerance, filtered
from bastion.serve._theft_pool import NEWCOMERS, combined
from bastion.watermark.keys import WatermarkKey


def _defence(kit: Any, digits: Any, seed: int = 11) -> Any:
    return kit.digits_defence(
        digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)), predict=True
    )


def _blur(rows: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(r.reshape(8, 8), sigma).reshape(-1) for r in rows])


def test_blurred_copies_are_filtered_copies_and_mixes_are_not(kit: Any, digits: Any) -> None:
    """Blurs of one digit (sigma 0.3-0.8) are copies of each other through a non-negative isotropic kernel,
    either way round and at another gain too; a mix of two digits, a small step and the nearest other digit
    are not."""
    guard = _defence(kit, digits)
    tol = filter_tolerance(guard._secret) * guard._resend_tau
    x = np.asarray(digits.x_test[:40], dtype=np.float64)
    rng = np.random.default_rng(0)
    a, b = _blur(x, 0.35), _blur(x, 0.75)
    assert filtered(b, a, 8, tol).all() and filtered(a, b, 8, tol).all()
    assert filtered(0.8 * b, a, 8, tol).all()
    mix = 0.6 * x + 0.4 * np.roll(x, 1, axis=0)  # (each with another digit)
    assert not filtered(mix, x, 8, tol).any()
    step = rng.normal(0.0, 1.0, x.shape)
    step *= 0.5 * guard._near_tau / np.linalg.norm(step, axis=1, keepdims=True)
    assert not filtered(np.clip(x + step, 0, 1), x, 8, tol).any()
    d = np.linalg.norm(x[:, None] - x[None], axis=2) + np.eye(40) * 1e9
    assert not filtered(x, x[d.argmin(axis=1)], 8, tol).any()


def test_fresh_accounts_sending_shared_digits_through_their_own_focus_do_not_flag_the_pool(
    kit: Any, digits: Any
) -> None:
    """40 fresh accounts, each sending 29 of the first 60 test digits through its own focus (a Gaussian blur,
    sigma 0.3-0.8). Before: their copies were mixtures and small steps of each other and the pool flagged most
    of them; now each blurred copy of a pooled digit counts once."""
    guard = _defence(kit, digits)
    x = np.asarray(digits.x_test[:60], dtype=np.float64)
    rng = np.random.default_rng(50)
    batches = [_blur(x[rng.integers(0, 60, 29)], rng.uniform(0.3, 0.8)) for _ in range(40)]
    first, flagged = kit.send_accounts(guard, digits.adapter, batches, tag="camera", batch=10, net="198.19")
    pool = guard._identities.get(NEWCOMERS)
    assert first is None and flagged == 0, (first, flagged, pool.flag)


def test_fisher_combination_of_the_pools_shift_and_mixtures() -> None:
    """One test alone is its own p-value; two tests each at 0.55 of the threshold combine beyond it; a strong
    test with a weak second (a new scanner's shift and a few mixtures) is no combined evidence."""
    for z in (1.0, 4.0, 8.0):
        alone = float(log_ndtr(-z)) / math.log(10.0)
        assert math.isclose(combined(z, threshold=-1.0), alone, rel_tol=1e-9)
    assert combined(5.5, -5.0, threshold=-9.0) < -9.0 < min(float(log_ndtr(-5.5)) / math.log(10.0), -5.0)
    assert combined(6.5, -1.9, threshold=-9.0) == 0.0  # (shift alone at 0.9 x the threshold, mixtures 0.2 x)
    assert combined(-2.0, -8.0, threshold=-9.0) == 0.0 and combined(0.0, 0.0, threshold=-9.0) == 0.0


def test_a_shifted_mixing_sybil_over_fresh_accounts_is_flagged_sooner(kit: Any, digits: Any) -> None:
    """Mixup of two test digits (lambda ~ U(0, 1)) over 29-row accounts: the pool's mixtures alone and its
    shift alone each flag it late (the mixtures test after ~400 attacker rows on the bench); the two together
    within 300."""
    guard = _defence(kit, digits)
    x = np.asarray(digits.x_test, dtype=np.float64)
    rng = np.random.default_rng(100)
    lam = rng.uniform(0.0, 1.0, (600, 1))
    rows = lam * x[rng.integers(0, len(x), 600)] + (1 - lam) * x[rng.integers(0, len(x), 600)]
    first, _ = kit.send_accounts(
        guard,
        digits.adapter,
        [rows[i : i + 29] for i in range(0, 600, 29)],
        tag="mixer",
        batch=20,
        net="198.19",
    )
    assert first is not None and first <= 300, first
    assert guard._identities.get(NEWCOMERS).flag.reason == "shift+mixtures"
