"""DP aggregate queries (OpenDP): utility, noise, the differencing attack they stop, and the shared ledger.

Every statistical check is set from the mechanism's own noise scale (``result.noise_scale``) at a
false-failure probability (FFP: the chance that correct code fails for an unlucky seed; the tests are seeded,
so a given run is deterministic) of at most ``FFP = 1e-6`` per assertion:

* count / histogram bins — discrete Laplace with scale b: P(|X| ≥ t) ≤ 2·e^(−t/b), so t = b·ln(2k/FFP) for
  k bins (union bound);
* sum — continuous Laplace with scale b: P(|X| > t) = e^(−t/b), so t = b·ln(1/FFP);
* mean — noisy sum / noisy count: the exact tail of (S + X_s)/(N + X_c) − S/N, summed over the discrete
  count noise (:func:`_mean_tolerance`);
* quantile — the exponential mechanism's utility bound in rank units (score sensitivity ≤ 1): the answer's
  rank error exceeds the best candidate's by more than (2/ε)·(ln|C| + ln(1/FFP)) with probability ≤ FFP;
* noise scale — 2000 draws of a discrete Laplace with scale 2: the sample mean and standard deviation within
  4.89 standard errors of their exact values (normal approximation, two-sided 1e-6);
* differencing attack — n = 10,000 guesses, each right with probability exactly e^ε/(1+e^ε) for this
  mechanism: the limit is the binomial quantile at FFP.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats

from bastion.errors import BudgetExhausted, InvalidInput, NotFound
from bastion.privacy.ledger import PrivacyLedger
from bastion.privacy.queries import _plan, dp_query, load_column
from bastion.store.db import open_engine

VALUES = np.random.default_rng(0).normal(50.0, 10.0, 2000)
FFP = 1e-6


def _mean_tolerance(sum_scale: float, count_scale: float, n: int, mean: float) -> float:
    """Smallest t with P(|(S + X_s)/(N + X_c) − S/N| > t) ≤ FFP, X_s ~ Laplace(sum_scale), X_c ~ discrete
    Laplace(count_scale): exact over X_c, closed form over X_s."""
    r = math.exp(-1.0 / count_scale)
    ks = np.arange(-int(60 * count_scale) - 50, int(60 * count_scale) + 51)
    pmf = (1 - r) / (1 + r) * r ** np.abs(ks)

    def laplace_sf(z: np.ndarray) -> np.ndarray:  # P(X_s > z)
        return np.where(z > 0, 0.5 * np.exp(-np.abs(z) / sum_scale), 1 - 0.5 * np.exp(-np.abs(z) / sum_scale))

    def tail(t: float) -> float:
        z = t * (n + ks)
        return float((pmf * (laplace_sf(z + mean * ks) + laplace_sf(z - mean * ks))).sum())

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > FFP else (lo, mid)
    return hi


def _rank_error(values: np.ndarray, c: float, q: float) -> float:
    """The quantile score in rank units: |(1 − q)·#below − q·#above| (0 at the exact quantile)."""
    return abs((1 - q) * float((values < c).sum()) - q * float((values > c).sum()))


CLIPPED = np.clip(VALUES, 0, 100)


@pytest.mark.parametrize(
    ("kind", "kwargs", "truth"),
    [
        ("count", {}, 2000),
        ("sum", {"lower": 0, "upper": 100}, float(CLIPPED.sum())),
        ("mean", {"lower": 0, "upper": 100}, float(CLIPPED.mean())),
    ],
)
def test_answers_are_within_the_noise_bound(kind: str, kwargs: dict, truth: float) -> None:
    r = dp_query(values=VALUES, kind=kind, epsilon=1.0, **kwargs)
    if kind == "count":
        tol = r.noise_scale[0] * math.log(2 / FFP)  # 14.5 at ε = 1
    elif kind == "sum":
        tol = r.noise_scale[0] * math.log(1 / FFP)  # 1382 at ε = 1
    else:
        tol = _mean_tolerance(r.noise_scale[0], r.noise_scale[1], len(VALUES), truth)  # 1.41 at ε = 1
    assert abs(float(r.value) - truth) <= tol, (r.value, truth, tol)  # type: ignore[arg-type]
    assert 0 < r.epsilon <= 1.0 and r.delta == 0.0 and "opendp" in r.mechanism


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_quantile_within_the_exponential_mechanism_bound(q: float) -> None:
    r = dp_query(values=VALUES, kind="quantile", epsilon=1.0, lower=0, upper=100, quantile=q)
    grid = np.linspace(0, 100, 101)  # the default 101 candidates
    best = min(_rank_error(VALUES, float(c), q) for c in grid)
    slack = 2 / r.epsilon * (math.log(grid.size) + math.log(1 / FFP))  # 36.9 ranks of 2000 at ε = 1
    assert float(r.value) in grid
    assert _rank_error(VALUES, float(r.value), q) <= best + slack  # type: ignore[arg-type]


def test_histograms_numeric_and_categorical() -> None:
    r = dp_query(values=VALUES, kind="histogram", epsilon=2.0, lower=0, upper=100, bins=4)
    truth, _ = np.histogram(VALUES, bins=4, range=(0, 100))
    assert len(r.value) == 5 and r.labels[-1] == "outside"  # type: ignore[arg-type]
    tol = r.noise_scale[0] * math.log(2 * 5 / FFP)  # 8.1 at scale 0.5: union bound over 5 bins
    assert np.abs(np.asarray(r.value[:4]) - truth).max() <= tol  # type: ignore[index]
    cats = dp_query(
        values=["a"] * 300 + ["b"] * 100 + ["z"] * 5, kind="histogram", epsilon=2.0, categories=["a", "b"]
    )
    assert cats.labels == ("a", "b", "other")
    tol = cats.noise_scale[0] * math.log(2 * 3 / FFP)
    assert abs(cats.value[0] - 300) <= tol and abs(cats.value[1] - 100) <= tol  # type: ignore[index]


def test_noise_has_the_laplace_scale_of_the_budget() -> None:
    """ε = 0.5 on a count (sensitivity 1): discrete Laplace with scale 2, standard deviation 2.80."""
    assert dp_query(values=[0] * 100, kind="count", epsilon=0.5).noise_scale == (2.0,)
    meas = _count_measurement(0.5)  # the very measurement dp_query runs, invoked many times
    n = 2000
    answers = np.array([meas([0] * 100) for _ in range(n)])
    r = math.exp(-1 / 2.0)
    var = 2 * r / (1 - r) ** 2  # discrete Laplace: variance and kurtosis (6.13 here)
    kurtosis = (1 + 10 * r + r * r) / (2 * r)
    z = 4.89  # two-sided normal quantile at 1e-6
    sd_se = math.sqrt(var) * math.sqrt((kurtosis - 1) / (4 * n))  # standard error of a sample sd
    assert abs(answers.std() - math.sqrt(var)) <= z * sd_se  # 2.80 ± 0.34
    assert abs(answers.mean() - 100) <= z * math.sqrt(var / n)  # ± 0.31
    assert (answers == np.round(answers)).all()  # integer (discrete) noise, no float artefacts


def _count_measurement(epsilon: float) -> Any:
    plan, _, _ = _plan(
        "count",
        epsilon=epsilon,
        lower=None,
        upper=None,
        n_bins=1,
        categories=None,
        quantile=None,
        candidates=2,
    )
    ((meas, _, _),) = plan.measurements
    return meas


def test_differencing_attack_with_and_without_dp() -> None:
    """Attacker knows everyone but Alice and asks for a count: exact answers reveal membership every time,
    DP answers at ε = 0.1 limit the guess to about e^ε/(1+e^ε) ≈ 52.5 %."""
    rng = np.random.default_rng(1)
    base = 50
    trials = 10_000
    meas = _count_measurement(0.1)
    exact_hits = dp_hits = 0
    for _ in range(trials):
        alice_in = bool(rng.integers(2))
        data = [0] * (base + int(alice_in))
        exact_hits += (len(data) > base) == alice_in
        noisy = meas(data)
        dp_hits += (noisy > base + 0.5) == alice_in
    assert exact_hits == trials
    bound = math.exp(0.1) / (1 + math.exp(0.1))
    # Each guess is right with probability exactly `bound` for this mechanism (P(noise ≥ 0) = P(noise ≤ 0)
    # = 0.525 for discrete Laplace with scale 10): FFP ≤ 1e-6 above the binomial quantile (0.5487).
    assert dp_hits <= stats.binom.isf(FFP, trials, bound), dp_hits / trials


def test_queries_spend_the_ledger_and_are_refused_before_release(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'c.db'}")
    ledger = PrivacyLedger(engine)
    ledger.set_budget("wine", epsilon=1.0, delta=1e-5)
    r = dp_query(values=VALUES, kind="mean", epsilon=0.6, lower=0, upper=100, ledger=ledger, dataset="wine")
    st = ledger.status("wine")
    assert st.epsilon_spent == pytest.approx(r.epsilon) and st.spends[0].kind == "query"
    assert st.spends[0].details["query"] == "mean"
    with pytest.raises(BudgetExhausted):
        dp_query(values=VALUES, kind="count", epsilon=0.6, ledger=ledger, dataset="wine")
    assert len(ledger.status("wine").spends) == 1
    with pytest.raises(InvalidInput, match="name its dataset"):
        dp_query(values=VALUES, kind="count", epsilon=0.1, ledger=ledger)
    engine.dispose()
    assert isinstance(engine, sa.Engine)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "count", "epsilon": 0.0}, "epsilon"),
        ({"kind": "count", "epsilon": -2.0}, "epsilon"),
        ({"kind": "median", "epsilon": 1.0}, "unknown query kind"),
        ({"kind": "sum", "epsilon": 1.0}, "bounds"),
        ({"kind": "mean", "epsilon": 1.0, "lower": 5, "upper": 1}, "lower < upper"),
        ({"kind": "quantile", "epsilon": 1.0, "lower": 0, "upper": 1, "quantile": 1.5}, "quantile"),
        ({"kind": "histogram", "epsilon": 1.0, "lower": 0, "upper": 1, "bins": 0}, "bins"),
    ],
)
def test_bad_queries_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        dp_query(values=VALUES, **kwargs)


def test_non_finite_values_and_columns(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="NaN"):
        dp_query(values=[1.0, float("nan")], kind="sum", epsilon=1.0, lower=0, upper=2)
    assert len(load_column(dataset="wine", column="alcohol")) == 178
    with pytest.raises(InvalidInput, match="no column"):
        load_column(dataset="wine", column="nope")
    with pytest.raises(NotFound):
        load_column(dataset="mnist", column="x")
    f = tmp_path / "d.csv"
    f.write_text("age,city\n30,Oslo\n41,Bergen\n", encoding="utf-8")
    assert load_column(data=f, column="age") == [30.0, 41.0]
    assert load_column(data=f, column="city") == ["Oslo", "Bergen"]
