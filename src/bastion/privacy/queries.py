"""Differentially private aggregate queries: count, sum, mean, histogram, quantile — built on OpenDP.

Every mechanism comes from OpenDP (the OpenDP Library, Harvard/OpenDP project), a vetted implementation whose
noise is sampled exactly: integer outputs get discrete Laplace noise, float outputs get Laplace noise on a
lattice of powers of two sampled with exact integer arithmetic, and sensitivities include float rounding.
This avoids the floating-point attack on textbook Laplace sampling (Mironov, "On Significance of the Least
Significant Bits for Differential Privacy", CCS 2012). Quantiles use OpenDP's exponential-mechanism quantile
(report-noisy-max over candidate scores, Smith 2011).

Privacy unit: one row (add/remove-one neighbouring, as DP-SGD). Each query's noise scale is found with
OpenDP's ``binary_search_chain`` so that the measurement's own privacy map gives ε_used ≤ ε; the ledger is
charged ε_used (pure ε-DP, δ = 0) on the dataset *before* the answer is computed, so a refused query
releases nothing.

Bounds (``lower``, ``upper``) and bins are public parameters: they must come from domain knowledge, never
from the data itself (deriving them from the data would leak it).

Deviation: ``mean`` is post-processed from a noisy sum and a noisy count, each with ε/2 (sequential
composition), rather than OpenDP's known-size mean, because the dataset size is itself private.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.errors import DependencyMissing, InvalidInput, NotFound
from bastion.privacy.dp import check_epsilon

if TYPE_CHECKING:
    from bastion.privacy.ledger import PrivacyLedger

QUERY_KINDS: tuple[str, ...] = ("count", "sum", "mean", "histogram", "quantile")
DEFAULT_QUANTILE_CANDIDATES = 101
MAX_CATEGORIES = 10_000


def _opendp() -> Any:
    try:
        import opendp.prelude as dp
    except ImportError as exc:  # pragma: no cover - opendp is in the privacy extra
        raise DependencyMissing("opendp is not installed", hint="pip install 'bastion-ml[privacy]'") from exc
    dp.enable_features("contrib")
    return dp


@dataclass(frozen=True)
class QueryResult:
    """A DP answer. ``value`` is a number (count/sum/mean/quantile) or a list of bin counts (histogram, whose
    last entry counts the values outside every bin/category)."""

    kind: str
    value: float | int | list[int]
    epsilon: float
    delta: float
    mechanism: str
    column: str | None = None
    dataset: str | None = None
    lower: float | None = None
    upper: float | None = None
    labels: tuple[str, ...] = ()
    quantile: float | None = None
    noise_scale: tuple[float, ...] = ()
    spend_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "mechanism": self.mechanism,
            "column": self.column,
            "dataset": self.dataset,
            "lower": self.lower,
            "upper": self.upper,
            "labels": list(self.labels),
            "quantile": self.quantile,
            "noise_scale": list(self.noise_scale),
            "spend_id": self.spend_id,
        }


@dataclass(frozen=True)
class _Plan:
    measurements: tuple[tuple[Any, float, str], ...]  # (OpenDP measurement, noise scale, input: rows|values)
    epsilon: float
    mechanism: str


def _bounds(lower: float | None, upper: float | None, kind: str) -> tuple[float, float]:
    if lower is None or upper is None:
        raise InvalidInput(f"a DP {kind} needs public bounds --lower and --upper")
    lo, hi = float(lower), float(upper)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInput(f"bounds must be finite with lower < upper, got [{lower}, {upper}]")
    return lo, hi


def _search(dp: Any, make: Any, epsilon: float, feed: str) -> tuple[Any, float, str]:
    """The measurement ``make(scale)`` with the smallest scale whose own privacy map gives ε ≤ ``epsilon``."""
    try:
        scale = float(dp.binary_search_param(make, d_in=1, d_out=epsilon))
        meas = make(scale)
        used = float(meas.map(1))
    except Exception as exc:  # OpenDP raises its own exception type for every failure
        raise InvalidInput(f"OpenDP could not build the query: {exc}") from exc
    if used > epsilon * (1 + 1e-12):
        raise InvalidInput(f"OpenDP measurement uses ε={used} > {epsilon}")
    return meas, scale, feed


def _plan(
    kind: str,
    *,
    epsilon: float,
    lower: float | None,
    upper: float | None,
    n_bins: int,
    categories: Sequence[str] | None,
    quantile: float | None,
    candidates: int,
) -> tuple[_Plan, tuple[str, ...], tuple[float, float] | None]:
    dp = _opendp()
    met = dp.symmetric_distance()
    fdom = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    idom = dp.vector_domain(dp.atom_domain(T=int))
    if kind == "count":
        m = _search(dp, lambda s: dp.t.make_count(idom, met) >> dp.m.then_laplace(s), epsilon, "rows")
        return _Plan((m,), _used(m), "opendp count + discrete laplace"), (), None
    if kind in ("sum", "mean"):
        lo, hi = _bounds(lower, upper, kind)
        share = epsilon if kind == "sum" else epsilon / 2.0
        s = _search(
            dp,
            lambda sc: (fdom, met) >> dp.t.then_clamp((lo, hi)) >> dp.t.then_sum() >> dp.m.then_laplace(sc),
            share,
            "values",
        )
        if kind == "sum":
            return (
                _Plan((s,), _used(s), "opendp clamp + sum + laplace (exact lattice sampling)"),
                (),
                (lo, hi),
            )
        c = _search(dp, lambda sc: dp.t.make_count(idom, met) >> dp.m.then_laplace(sc), share, "rows")
        used = _used(s) + _used(c)
        return _Plan((s, c), used, "opendp noisy sum / noisy count (ε/2 each)"), (), (lo, hi)
    if kind == "histogram":
        if categories is not None:
            cats = list(dict.fromkeys(str(c) for c in categories))
            if not cats or len(cats) > MAX_CATEGORIES:
                raise InvalidInput(f"give 1–{MAX_CATEGORIES} categories")
            sdom = dp.vector_domain(dp.atom_domain(T=str))
            m = _search(
                dp,
                lambda sc: (
                    dp.t.make_count_by_categories(sdom, met, categories=cats, MO=dp.L1Distance[int])
                    >> dp.m.then_laplace(sc)
                ),
                epsilon,
                "values",
            )
            return (
                _Plan((m,), _used(m), "opendp count_by_categories + discrete laplace"),
                (*cats, "other"),
                None,
            )
        lo, hi = _bounds(lower, upper, kind)
        if not 1 <= n_bins <= MAX_CATEGORIES:
            raise InvalidInput(f"bins must be in 1..{MAX_CATEGORIES}, got {n_bins}")
        edges = np.linspace(lo, hi, n_bins + 1)
        labels = tuple(
            f"[{edges[i]:.6g}, {edges[i + 1]:.6g}{']' if i == n_bins - 1 else ')'}" for i in range(n_bins)
        )
        m = _search(
            dp,
            lambda sc: (
                dp.t.make_count_by_categories(
                    idom, met, categories=list(range(n_bins)), MO=dp.L1Distance[int]
                )
                >> dp.m.then_laplace(sc)
            ),
            epsilon,
            "values",
        )
        return (
            _Plan((m,), _used(m), "opendp count_by_categories + discrete laplace"),
            (*labels, "outside"),
            (lo, hi),
        )
    if kind == "quantile":
        lo, hi = _bounds(lower, upper, kind)
        if quantile is None or not 0.0 <= float(quantile) <= 1.0:
            raise InvalidInput(f"quantile must be in [0, 1], got {quantile}")
        if not 2 <= candidates <= MAX_CATEGORIES:
            raise InvalidInput(f"candidates must be in 2..{MAX_CATEGORIES}")
        cands = [float(v) for v in np.linspace(lo, hi, candidates)]
        m = _search(
            dp,
            lambda sc: dp.m.make_private_quantile(
                fdom, met, dp.max_divergence(), candidates=cands, alpha=float(quantile), scale=sc
            ),
            epsilon,
            "values",
        )
        return _Plan((m,), _used(m), "opendp private_quantile (exponential mechanism)"), (), (lo, hi)
    raise InvalidInput(f"unknown query kind {kind!r} (use one of {', '.join(QUERY_KINDS)})")


def _used(entry: tuple[Any, float, str]) -> float:
    return float(entry[0].map(1))


def _numeric(values: Sequence[Any] | np.ndarray) -> list[float]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("this query needs a numeric column") from exc
    if arr.ndim != 1:
        raise InvalidInput("query values must be one column")
    if not np.isfinite(arr).all():
        raise InvalidInput("the column contains NaN or infinite values: drop or impute them first")
    return [float(v) for v in arr]


def dp_query(
    *,
    values: Sequence[Any] | np.ndarray,
    kind: str,
    epsilon: float,
    lower: float | None = None,
    upper: float | None = None,
    bins: int = 10,
    categories: Sequence[str] | None = None,
    quantile: float | None = None,
    candidates: int = DEFAULT_QUANTILE_CANDIDATES,
    ledger: PrivacyLedger | None = None,
    dataset: str | None = None,
    column: str | None = None,
    dataset_label: str | None = None,
) -> QueryResult:
    """Answer one DP aggregate query over ``values`` (one column), spending ``epsilon`` on ``dataset``.

    ``lower``/``upper`` are required for sum, mean, quantile and numeric histograms (``bins`` equal-width
    bins); ``categories`` makes a histogram over string values. With a ``ledger``, ``dataset`` is charged
    before anything is computed (BudgetExhausted if it does not fit).
    """
    eps = check_epsilon(epsilon)
    if kind not in QUERY_KINDS:
        raise InvalidInput(f"unknown query kind {kind!r} (use one of {', '.join(QUERY_KINDS)})")
    if ledger is not None and not dataset:
        raise InvalidInput("a query charged to the ledger must name its dataset")
    plan, labels, bounds = _plan(
        kind,
        epsilon=eps,
        lower=lower,
        upper=upper,
        n_bins=int(bins),
        categories=categories,
        quantile=quantile,
        candidates=int(candidates),
    )
    rows: list[int] = [0] * len(values)  # a count only sees how many rows there are
    if kind == "count":
        data: list[Any] = rows
    elif kind == "histogram" and categories is not None:
        data = [str(v) for v in values]
    else:
        data = _numeric(values)
    if kind == "histogram" and categories is None:
        assert bounds is not None
        lo, hi = bounds
        edges = np.linspace(lo, hi, int(bins) + 1)
        arr = np.asarray(data)
        idx = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, int(bins) - 1)
        inside = (arr >= lo) & (arr <= hi)
        data = [int(i) if ok else -1 for i, ok in zip(idx, inside, strict=True)]
    reservation = None
    if ledger is not None:
        assert dataset is not None
        reservation = ledger.reserve(
            datasets=dataset,
            epsilon=plan.epsilon,
            delta=0.0,
            kind="query",
            details={"query": kind, "column": column, "lower": lower, "upper": upper},
            labels={dataset: dataset_label} if dataset_label else None,
        )
    try:
        outputs = [m(rows if feed == "rows" else data) for m, _, feed in plan.measurements]
    finally:
        if ledger is not None and reservation is not None:
            ledger.settle(reservation, epsilon=plan.epsilon, delta=0.0)
    value: float | int | list[int]
    if kind == "count":
        value = max(0, int(outputs[0]))
    elif kind == "sum":
        value = float(outputs[0])
    elif kind == "mean":
        assert bounds is not None
        noisy_sum, noisy_count = float(outputs[0]), max(1, int(outputs[1]))
        value = float(min(max(noisy_sum / noisy_count, bounds[0]), bounds[1]))
    elif kind == "histogram":
        value = [max(0, int(v)) for v in outputs[0]]
    else:
        value = float(outputs[0])
    scales = tuple(scale for _, scale, _ in plan.measurements)
    return QueryResult(
        kind=kind,
        value=value,
        epsilon=plan.epsilon,
        delta=0.0,
        mechanism=plan.mechanism,
        column=column,
        dataset=dataset,
        lower=bounds[0] if bounds else None,
        upper=bounds[1] if bounds else None,
        labels=labels,
        quantile=float(quantile) if kind == "quantile" and quantile is not None else None,
        noise_scale=scales,
        spend_id=reservation.spend_id if reservation is not None else None,
    )


def load_column(*, column: str, dataset: str | None = None, data: str | Path | None = None) -> list[Any]:
    """The raw values of one column of a built-in dataset (features by name, or ``target``) or of a CSV file.

    CSV values are returned as strings when any is non-numeric (for categorical histograms), else floats.
    """
    if (dataset is None) == (data is None):
        raise InvalidInput("give exactly one of a built-in dataset or a data file")
    if dataset is not None:
        from sklearn import datasets as skd

        from bastion.models.data import DATASETS

        loaders = {"digits": skd.load_digits, "breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}
        if dataset not in loaders:
            raise NotFound(f"unknown dataset {dataset!r}", hint=f"built-in datasets: {', '.join(DATASETS)}")
        bunch = loaders[dataset]()
        if column == "target":
            return [float(v) for v in bunch.target]
        names = [str(n) for n in getattr(bunch, "feature_names", [])]
        if column not in names:
            raise InvalidInput(
                f"dataset {dataset!r} has no column {column!r}", hint=f"columns: {', '.join(names[:12])}, …"
            )
        return [float(v) for v in bunch.data[:, names.index(column)]]
    p = Path(str(data))
    if not p.is_file():
        raise NotFound(f"no such data file: {p}")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if column not in header:
                raise InvalidInput(f"{p}: no column {column!r}")
            i = header.index(column)
            raw = [row[i].strip() for row in reader if row and len(row) > i]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{p}: not a readable CSV file") from exc
    try:
        return [float(v) for v in raw]
    except ValueError:
        return raw


__all__ = ["QUERY_KINDS", "QueryResult", "dp_query", "load_column"]
