"""One-run privacy audit (Steinke, Nasr, Jagielski 2023): catches broken DP, never exceeds a correct claim.

False-failure probability (FFP: the chance a test fails on correct code for an unlucky seed; every test is
seeded, so a given run is deterministic):

* ``test_random_guessing_stays_at_zero_with_bonferroni`` — 1000 trials, each positive with probability
  ≤ 5 % for a valid 95 % bound; the threshold is the binomial quantile with FFP ≤ 1e-6.
* ``test_audit_never_exceeds_a_correct_claim`` — FFP ≤ 5 % per claim (the bound's 95 % confidence); in
  practice far lower, since one-run audits with 1000 canaries sit well below a correct claim.
* ``test_audit_catches_broken_dp`` — a power test (no noise at all: the bound is far above the claim).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bastion.errors import InvalidInput
from bastion.models.data import load_dataset
from bastion.privacy.audit import audit_dp_sgd, best_guess_bound, epsilon_lower_bound, p_value


def test_p_value_is_the_binomial_tail_plus_the_delta_term() -> None:
    q = 1 / (1 + math.exp(-1.0))
    assert p_value(m=100, r=50, v=40, epsilon=1.0, delta=0.0) == pytest.approx(stats.binom.sf(39, 50, q))
    assert p_value(m=100, r=50, v=40, epsilon=1.0, delta=1e-3) > p_value(
        m=100, r=50, v=40, epsilon=1.0, delta=0
    )
    with pytest.raises(InvalidInput):
        p_value(m=10, r=20, v=5, epsilon=1.0, delta=0.0)


def test_lower_bound_matches_closed_form_for_all_correct_guesses() -> None:
    """All r guesses right, δ = 0: ε̂ solves q^r = 0.05 with q = e^ε/(1+e^ε)."""
    r = 200
    q = 0.05 ** (1 / r)
    expected = math.log(q / (1 - q))
    assert epsilon_lower_bound(m=r, r=r, v=r, delta=0.0) == pytest.approx(expected, rel=1e-6)
    assert epsilon_lower_bound(m=r, r=r, v=r // 2, delta=0.0) == 0.0  # chance level proves nothing
    assert epsilon_lower_bound(m=1000, r=0, v=0, delta=1e-5) == 0.0


def test_random_guessing_stays_at_zero_with_bonferroni() -> None:
    """On random scores the true ε is 0, so a valid 95 % lower bound (Bonferroni over the guess counts) is
    positive at most 5 % of the time: hits ~ Binomial(n, p ≤ 0.05)."""
    rng = np.random.default_rng(0)
    trials, hits = 1000, 0
    for _ in range(trials):
        included = rng.random(500) < 0.5
        eps, *_ = best_guess_bound(scores=rng.normal(size=500), included=included, delta=1e-5)
        hits += eps > 0
    limit = stats.binom.isf(1e-6, trials, 0.05)  # 86 of 1000: P(hits > limit) ≤ 1e-6 at exactly 5 %
    assert hits <= limit, (hits, limit)


def test_audit_catches_broken_dp() -> None:
    d = load_dataset("digits")
    broken = audit_dp_sgd(dataset=d, epsilon=1.0, canaries=1000, epochs=5, unsafe_noise_multiplier=0.0)
    assert broken.effective_noise_multiplier == 0.0 and broken.noise_multiplier > 1.0
    assert broken.epsilon_lower_bound >= 4.0 * broken.claimed_epsilon  # far above the claim
    assert not broken.consistent


@pytest.mark.parametrize("claimed", [1.0, 8.0])
def test_audit_never_exceeds_a_correct_claim(claimed: float) -> None:
    d = load_dataset("digits")
    result = audit_dp_sgd(dataset=d, epsilon=claimed, canaries=1000, epochs=5, seed=3)
    assert result.consistent and result.epsilon_lower_bound <= claimed
    assert result.steps == 5 * round(1 / result.sample_rate)
    assert result.accuracy > 0.5  # the audited run is a real training run
    if claimed == 8.0:
        assert result.epsilon_lower_bound > 0.3  # and the audit has power: it sees real leakage at large ε


def test_audit_rejects_bad_input() -> None:
    d = load_dataset("wine")
    with pytest.raises(InvalidInput):
        audit_dp_sgd(dataset=d, epsilon=0.0)
    with pytest.raises(InvalidInput):
        audit_dp_sgd(dataset=d, epsilon=1.0, delta=1.0)
    with pytest.raises(InvalidInput):
        audit_dp_sgd(dataset=d, epsilon=1.0, canaries=1)
    with pytest.raises(InvalidInput):
        epsilon_lower_bound(m=10, r=10, v=10, delta=0.0, confidence=1.0)
