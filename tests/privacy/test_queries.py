"""DP aggregate queries (OpenDP): utility, noise, the differencing attack they stop, and the shared ledger."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from bastion.errors import BudgetExhausted, InvalidInput, NotFound
from bastion.privacy.ledger import PrivacyLedger
from bastion.privacy.queries import _plan, dp_query, load_column
from bastion.store.db import open_engine

VALUES = np.random.default_rng(0).normal(50.0, 10.0, 2000)


@pytest.mark.parametrize(
    ("kind", "kwargs", "truth", "tol"),
    [
        ("count", {}, 2000, 40),
        ("sum", {"lower": 0, "upper": 100}, float(np.clip(VALUES, 0, 100).sum()), 3000),
        ("mean", {"lower": 0, "upper": 100}, float(VALUES.mean()), 2.0),
        ("quantile", {"lower": 0, "upper": 100, "quantile": 0.5}, float(np.median(VALUES)), 2.0),
        ("quantile", {"lower": 0, "upper": 100, "quantile": 0.9}, float(np.quantile(VALUES, 0.9)), 3.0),
    ],
)
def test_answers_are_close_at_moderate_epsilon(kind: str, kwargs: dict, truth: float, tol: float) -> None:
    r = dp_query(values=VALUES, kind=kind, epsilon=1.0, **kwargs)
    assert abs(float(r.value) - truth) <= tol  # type: ignore[arg-type]
    assert 0 < r.epsilon <= 1.0 and r.delta == 0.0 and "opendp" in r.mechanism


def test_histograms_numeric_and_categorical() -> None:
    r = dp_query(values=VALUES, kind="histogram", epsilon=2.0, lower=0, upper=100, bins=4)
    truth, _ = np.histogram(VALUES, bins=4, range=(0, 100))
    assert len(r.value) == 5 and r.labels[-1] == "outside"  # type: ignore[arg-type]
    assert np.abs(np.asarray(r.value[:4]) - truth).max() <= 20  # type: ignore[index]
    cats = dp_query(
        values=["a"] * 300 + ["b"] * 100 + ["z"] * 5, kind="histogram", epsilon=2.0, categories=["a", "b"]
    )
    assert cats.labels == ("a", "b", "other")
    assert abs(cats.value[0] - 300) <= 20 and abs(cats.value[1] - 100) <= 20  # type: ignore[index]


def test_noise_has_the_laplace_scale_of_the_budget() -> None:
    """ε = 0.5 on a count (sensitivity 1): discrete Laplace with scale 2, standard deviation ≈ 2.8."""
    assert dp_query(values=[0] * 100, kind="count", epsilon=0.5).noise_scale == (2.0,)
    meas = _count_measurement(0.5)  # the very measurement dp_query runs, invoked many times
    answers = np.array([meas([0] * 100) for _ in range(2000)])
    assert 2.4 <= answers.std() <= 3.2
    assert abs(answers.mean() - 100) < 0.3
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
    trials = 1000
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
    assert dp_hits / trials <= bound + 0.07  # 0.595: > 4 standard deviations above the bound


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
