"""Extraction monitor: PRADA plus an input-space coverage monitor, per client.

PRADA — Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019.
For every new query of a client the monitor takes the minimum L2 distance to the client's previous queries and
adds it to the client's distance set; once the set holds ``min_queries`` distances it runs the Shapiro-Wilk
normality test on it and flags the client when ``W < delta``. Natural queries give roughly normal nearest
distances; synthetic queries made by small steps from earlier ones (Papernot's Jacobian-based augmentation,
Tramèr's line searches) give a spike of small distances next to large ones.

Deviations from the paper, so that the per-request cost stays flat however long a client's history grows:

* the previous queries are a fixed-size ring buffer (``history``, default 512) rather than the unbounded
  per-class "growing set" with its admission threshold, and the distance is taken over all of them (not only
  those of the same predicted class); the nearest distance is one vectorised ``‖h‖² + ‖x‖² - 2 h·x`` over the
  buffer with cached norms;
* Shapiro-Wilk runs over the last ``distance_window`` distances (default 256), not over every distance since
  the first query.

PRADA does not see uniformly random synthetic queries: their nearest distances are close to normal. The
coverage monitor does. It hashes every query with ``coverage_bits`` random hyperplanes through the centre of
the input range (sign random projections, as in SimHash) and compares the entropy of the client's bucket
histogram over its last ``coverage_window`` queries with the entropy that the same number of uniformly spread
queries would reach. Natural data lies on a thin manifold and fills few buckets (digits: ratio 0.66-0.83); a
client that covers the input space evenly, as random-query extraction does, comes close to 1 and is flagged
when the ratio exceeds ``coverage_threshold``. This follows the idea of Kesarwani et al. (ACSAC 2018), "Model
Extraction Warning in MLaaS Paradigm" (coverage of the feature space by a client's queries), with a hash
instead of a decision tree. The hyperplanes are secret: drawn from a generator keyed by the deployment key
(``key=``, an HKDF sub-key of the key ring's secret; fresh OS randomness when none is given), so queries
cannot be shaped to stay in a few buckets by reading the code.

How much of the input space natural rows fill depends on the hyperplanes, so on the key: uncalibrated (the
key's first draw, threshold 0.90), 24 of 300 random keys flagged one of 100 benign held-out digits streams of
2,000 rows, and on breast_cancer 175 of 300 did. Given the deployment's reference (training) rows
(``reference=``, optionally ``reference_labels=``; the theft defence passes its reference set), the monitor
calibrates per key: it replays bootstrap benign streams of the reference rows — mixed traffic, every input
sent three times, one class at a time, batch jobs walking the rows in order (the benign behaviours of issue 20
item 5) — and reads the coverage ``observe`` would compute after every row. It keeps the first of up to
``PLANE_DRAWS`` keyed hyperplane draws under which those streams stay at or below ``ACCEPT_BENIGN`` (0.80; on
digits two keys in three pass at the first draw) and sets the threshold to ``max(coverage_threshold, benign
peak + COVERAGE_MARGIN)``. The test is switched off (``inf``) rather than flag customers where it cannot
separate: where that threshold passes ``COVERAGE_CAP`` (0.95), or where simulated uniformly random clients
over the reference rows' range do not all cross it within 300 rows. Everything is a function of the key and
the reference rows, so replicas agree; the result is in ``calibration`` (:class:`CoverageCalibration`).
Measured with the training split for calibration and the held-out split for the check
(``benchmarks/bench_extraction.py --monitor-keys 300``; ``tests/serve/test_monitor.py`` runs 24 fresh keys):
digits, no key flags a benign stream (largest benign coverage 0.076 below the threshold), random clients
are flagged at their 50th row under every key; breast_cancer, whose random clients fill fewer buckets than
its natural rows (uncalibrated coverage caught them under 23 keys), has the coverage test off under every key
and no benign flag. Without reference rows (the gateway's stand-alone monitor) the hyperplanes are
the key's first draw and the threshold is ``coverage_threshold``, uncalibrated, with the benign flag rates
above. The Shapiro-Wilk threshold was tuned on the digits *training* split (benign windows: W above 0.92) and
does not depend on the key.

A flag is sticky until an admin resets the client. Client state lives in memory (``MemoryMonitorStore``) or in
Redis (``RedisMonitorStore``), so several gateway replicas share it (:mod:`bastion.serve.monitor_stores`).
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from bastion.errors import InvalidInput
from bastion.serve.config import MonitorConfig
from bastion.serve.interface import MonitorStore
from bastion.serve.monitor_stores import ClientSnapshot, MemoryMonitorStore, RedisMonitorStore
from bastion.serve.responses import keyed_generator


@dataclass(frozen=True)
class MonitorVerdict:
    """The monitor's view of one client after a request."""

    client: str
    queries: int
    shapiro_w: float | None
    coverage: float | None
    flagged: bool
    reason: str | None
    newly_flagged: bool = False


@functools.lru_cache(maxsize=1024)
def _swilk_coefficients(n: int) -> np.ndarray:
    """Shapiro-Wilk coefficients a_1..a_n for n >= 6 (Royston 1992, AS R94, as in scipy's ``swilk``)."""
    m = ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    ssq = float(m @ m)
    u = 1.0 / np.sqrt(n)
    c = m / np.sqrt(ssq)
    a = np.empty(n)
    an = c[-1] + 0.221157 * u - 0.147981 * u**2 - 2.071190 * u**3 + 4.434685 * u**4 - 2.706056 * u**5
    an1 = c[-2] + 0.042981 * u - 0.293762 * u**2 - 1.752461 * u**3 + 5.682633 * u**4 - 3.582633 * u**5
    phi = (ssq - 2 * m[-1] ** 2 - 2 * m[-2] ** 2) / (1 - 2 * an**2 - 2 * an1**2)
    a[:] = m / np.sqrt(phi)
    a[-1], a[-2], a[0], a[1] = an, an1, -an, -an1
    a.setflags(write=False)
    return a


def shapiro_w(x: np.ndarray) -> float:
    """The Shapiro-Wilk W statistic (no p-value), with cached coefficients: ~10 µs for n = 256.

    Matches ``scipy.stats.shapiro(x).statistic`` (tested) without its per-call wrapper overhead.
    """
    n = len(x)
    if n < 6:
        raise ValueError("Shapiro-Wilk needs at least 6 values")
    y = np.sort(np.asarray(x, dtype=np.float64))
    centred = y - y.mean()
    ss = float(centred @ centred)
    if ss <= 0.0:
        return 1.0
    num = float(_swilk_coefficients(n) @ y)
    return min(1.0, num * num / ss)


# Per-key calibration of the coverage threshold (see the module docstring).
ACCEPT_BENIGN = 0.80  # keep the first hyperplane draw whose benign reference streams stay at or below this
COVERAGE_MARGIN = 0.10  # threshold >= benign peak + this (held-out digits: <= 0.087 over the train peak)
COVERAGE_CAP = 0.95  # a threshold above this would miss random clients (>= 0.93 from 50 rows): coverage off
RANDOM_CLIENTS, RANDOM_ROWS = 8, 300  # simulated random clients that must cross the threshold
PLANE_DRAWS = 16  # keyed draws tried (61 % of first draws pass on digits)
CALIBRATION_ROWS = 4000


@dataclass(frozen=True)
class CoverageCalibration:
    """How the coverage test was set for one key and reference set: ``threshold`` in force (``inf``: off,
    it cannot separate benign from random clients), the largest and mean benign coverage over ``streams``
    bootstrap streams of the reference rows, the smallest peak coverage of simulated uniformly random
    clients within ``RANDOM_ROWS`` rows, and which keyed hyperplane ``draw`` was kept."""

    threshold: float
    benign_max: float
    benign_mean: float
    random_min: float
    draw: int
    streams: int


def _planes(secret: bytes, draw: int, n_features: int, bits: int) -> np.ndarray:
    label = "bastion-monitor-planes-v1" if draw == 0 else f"bastion-monitor-planes-v1:{draw}"
    return keyed_generator(secret, label).standard_normal((n_features, bits)).astype(np.float32)


def _benign_streams(rng: np.random.Generator, n: int, labels: Any, *, length: int) -> list[np.ndarray]:
    """Row indices of benign client streams over ``n`` reference rows (issue 20 item 5): mixed traffic
    without repeats, each input sent 3 times, a single class, and batch jobs walking the rows in order."""
    out = [rng.permutation(n)[: 4 * length] for _ in range(24)]
    out += [np.repeat(rng.permutation(n)[: length // 3 + 1], 3)[:length] for _ in range(4)]
    if labels is not None:
        y = np.asarray(labels)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            out.append(idx[rng.permutation(len(idx))[:length]])
    starts = rng.integers(0, max(1, n - length), 4)
    out += [np.arange(s, min(n, s + length)) for s in starts]
    return out


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


RESEND_FEATURES = 6  # two independent glitches of 1-3 features each


def sparse_resend(x: np.ndarray, source: np.ndarray, share: float) -> np.ndarray:
    """Whether each row of ``x`` differs from its ``source`` row by a glitch on a few features: at least
    ``share`` of the squared difference on its ``RESEND_FEATURES`` largest features (natural nearest
    neighbours, breast_cancer and digits training rows: at most 0.92)."""
    d = np.sort((np.asarray(x, np.float64) - source) ** 2, axis=1)[:, ::-1]
    total = d.sum(axis=1)
    return np.asarray((total > 0) & (d[:, :RESEND_FEATURES].sum(axis=1) >= share * total), dtype=bool)


class ExtractionMonitor:
    """PRADA + coverage over a client's queries. ``observe`` is called once per request with its rows."""

    def __init__(
        self,
        *,
        config: MonitorConfig,
        n_features: int,
        store: MonitorStore | None = None,
        center: float | np.ndarray = 0.0,
        key: bytes | None = None,
        reference: Any = None,
        reference_labels: Any = None,
        resend_share: float | None = None,
    ) -> None:
        self.config = config
        # rows whose difference to their nearest earlier query has this share of its energy on at most
        # RESEND_FEATURES features add no distance (sparse_resend; None: every row adds one, as in PRADA)
        self.resend_share = resend_share
        self.delta = config.delta  # PRADA's threshold (the theft defence sets it per key: _theft_prada)
        self.n_features = n_features
        self.store: MonitorStore = store or MemoryMonitorStore(config=config, n_features=n_features)
        # The hyperplanes are secret: drawn from a generator keyed by the deployment key (HMAC-SHA256 of it),
        # or from fresh OS randomness when no key is given (then replicas sharing a Redis store disagree).
        secret = key if key is not None else os.urandom(32)
        self._secret = secret
        self._planes = _planes(secret, 0, n_features, config.coverage_bits)
        self._center = np.asarray(center, dtype=np.float32)
        self._weights = (1 << np.arange(config.coverage_bits)).astype(np.int64)
        self._buckets = 1 << config.coverage_bits
        # Expected plug-in entropy of n uniformly spread queries, n <= coverage_window (Monte Carlo).
        trials = 200
        draws = np.random.default_rng(1).integers(
            0, self._buckets, (trials, config.coverage_window), dtype=np.int64
        )
        self._uniform = np.zeros(config.coverage_window + 1)
        for n in range(config.min_queries, config.coverage_window + 1):
            self._uniform[n] = np.mean(
                [
                    _entropy(np.bincount(row[:n], minlength=self._buckets))
                    for row in draws[: max(20, trials // 4)]
                ]
            )
        self.coverage_threshold = config.coverage_threshold
        self.calibration: CoverageCalibration | None = None
        if reference is not None:
            self.calibration = self._calibrate(reference, reference_labels)
            self.coverage_threshold = self.calibration.threshold

    def codes(self, rows: np.ndarray) -> np.ndarray:
        bits = ((rows - self._center) @ self._planes) > 0
        return bits.astype(np.int64) @ self._weights

    def coverage_trace(self, codes: np.ndarray, *, batch: int = 1) -> np.ndarray:
        """The coverage ``observe`` computes after each ``batch``-row request of a fresh client whose rows
        hash to ``codes`` (NaN before ``min_queries`` codes): one vectorised pass, no client state touched."""
        cfg = self.config
        codes = np.asarray(codes, dtype=np.int64)
        n = len(codes)
        counts = np.zeros((n + 1, self._buckets), dtype=np.int32)
        np.add.at(counts, (np.arange(1, n + 1), codes), 1)
        counts = counts.cumsum(axis=0)
        ends = np.unique(np.append(np.arange(batch, n + 1, batch), n)) if n else np.zeros(0, np.int64)
        starts = np.maximum(ends - cfg.coverage_window, 0)
        k = ends - starts
        out = np.full(len(ends), np.nan)
        ok = k >= cfg.min_queries
        p = (counts[ends[ok]] - counts[starts[ok]]) / k[ok, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
        out[ok] = h / self._uniform[k[ok]]
        return out

    def _calibrate(self, reference: Any, labels: Any) -> CoverageCalibration:
        """Keep the first keyed hyperplane draw under which benign streams of the reference (training) rows
        stay at or below ``ACCEPT_BENIGN`` coverage, and set the threshold above what they reach."""
        cfg = self.config
        x = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)
        if x.shape[1] != self.n_features or len(x) < cfg.min_queries:
            raise InvalidInput(
                f"coverage calibration needs at least {cfg.min_queries} reference rows of "
                f"{self.n_features} features"
            )
        y = None if labels is None else np.asarray(labels).reshape(-1)
        if y is not None and len(y) != len(x):
            raise InvalidInput("coverage calibration: reference labels do not match the reference rows")
        rng = keyed_generator(self._secret, "bastion-monitor-calibration-v1")
        if len(x) > CALIBRATION_ROWS:
            keep = np.sort(rng.choice(len(x), CALIBRATION_ROWS, replace=False))
            x, y = x[keep], None if y is None else y[keep]
        streams = _benign_streams(rng, len(x), y, length=4 * cfg.coverage_window)
        best: tuple[float, int, np.ndarray, float] | None = None
        for draw in range(PLANE_DRAWS):
            planes = _planes(self._secret, draw, self.n_features, cfg.coverage_bits)
            self._planes = planes
            codes = self.codes(x)
            traces = [self.coverage_trace(codes[s]) for s in streams]
            peak = float(max(np.nanmax(t) for t in traces))
            mean = float(np.mean([np.nanmean(t) for t in traces]))
            if best is None or peak < best[0]:
                best = (peak, draw, planes, mean)
            if peak <= ACCEPT_BENIGN:
                break
        assert best is not None
        peak, draw, planes, mean = best
        self._planes = planes
        # Uniformly random clients over the reference rows' range, as random-query extraction sends them:
        # the test is kept only if every one of them crosses the threshold within RANDOM_ROWS rows.
        lo, hi = float(x.min()), float(x.max())
        rand = rng.uniform(lo, hi, (RANDOM_CLIENTS * RANDOM_ROWS, self.n_features)).astype(np.float32)
        rcodes = self.codes(rand).reshape(RANDOM_CLIENTS, RANDOM_ROWS)
        random_min = float(min(np.nanmax(self.coverage_trace(c)) for c in rcodes))
        threshold = max(cfg.coverage_threshold, peak + COVERAGE_MARGIN)
        if threshold > COVERAGE_CAP or random_min <= threshold:
            threshold = math.inf  # natural rows fill the buckets as random ones do: coverage cannot tell
        return CoverageCalibration(
            threshold=threshold,
            benign_max=peak,
            benign_mean=mean,
            random_min=random_min,
            draw=draw,
            streams=len(streams),
        )

    def observe(self, client: str, rows: np.ndarray) -> MonitorVerdict:
        """Add a request's rows (shape ``(n, n_features)``) to the client's state and judge the client."""
        cfg = self.config
        x = np.ascontiguousarray(rows, dtype=np.float32).reshape(len(rows), self.n_features)
        snap = self.store.snapshot(client)
        hist = snap.history
        xsq = np.einsum("ij,ij->i", x, x)
        # Nearest distance of each new row to the previous queries and to the earlier rows of this request:
        # one (n, k) and one (n, n) matrix of squared distances, ‖h‖² + ‖x‖² - 2 h·x, with cached ‖h‖².
        d2 = np.full((len(x), 0), np.inf)
        if len(hist):
            hsq = snap.history_sq if snap.history_sq is not None else np.einsum("ij,ij->i", hist, hist)
            d2 = hsq[None, :] + xsq[:, None] - 2.0 * (x @ hist.T)
        within = xsq[None, :] + xsq[:, None] - 2.0 * (x @ x.T)
        within[np.triu_indices(len(x))] = np.inf
        d2 = np.concatenate([d2, within], axis=1)
        nearest = d2.min(axis=1) if d2.shape[1] else np.full(len(x), np.inf)
        finite = np.isfinite(nearest)
        if self.resend_share is not None and finite.any():
            # a re-send of one source with a glitch on a few features (a hot pixel, a misread field) is the
            # same input again: its distance to the source would put a spike next to the natural distances
            src = np.concatenate([hist, x])[d2[finite].argmin(axis=1)]
            finite[finite] = ~sparse_resend(x[finite], src, self.resend_share)
        distances = np.sqrt(np.maximum(nearest[finite], 0.0)).astype(np.float64)
        codes = self.codes(x)

        all_d = np.concatenate([snap.distances, distances])[-cfg.distance_window :]
        all_codes = np.concatenate([snap.codes, codes])[-cfg.coverage_window :]
        count = snap.count + len(x)
        w: float | None = None
        coverage: float | None = None
        reason: str | None = None
        if len(all_d) >= cfg.min_queries and np.ptp(all_d) > 0:
            w = shapiro_w(all_d)
            if w < self.delta:
                reason = f"prada: Shapiro-Wilk W={w:.3f} < {self.delta:.3g}"
        if len(all_codes) >= cfg.min_queries:
            expected = self._uniform[len(all_codes)]
            coverage = _entropy(np.bincount(all_codes, minlength=self._buckets)) / expected
            if reason is None and coverage > self.coverage_threshold:
                reason = f"coverage: {coverage:.3f} > {self.coverage_threshold:.3f}"
        newly = reason is not None and snap.flag is None
        self.store.record(client, rows=x, distances=distances, codes=codes, flag=reason if newly else None)
        flag = snap.flag or reason
        return MonitorVerdict(
            client=client,
            queries=count,
            shapiro_w=w,
            coverage=coverage,
            flagged=flag is not None,
            reason=flag,
            newly_flagged=newly,
        )

    def flag(self, client: str) -> str | None:
        return self.store.flag(client)

    def reset(self, client: str) -> None:
        self.store.reset(client)

    def clients(self) -> list[dict[str, Any]]:
        return [
            {"client": c, "queries": n, "flagged": f is not None, "reason": f}
            for c, n, f in self.store.clients()
        ]


def measure_observe_cost(
    monitor: ExtractionMonitor, *, client: str, rows: np.ndarray, repeats: int = 200
) -> float:
    """Mean seconds per one-row ``observe`` call (the benchmark shows that the cost stays flat)."""
    start = time.perf_counter()
    for i in range(repeats):
        monitor.observe(client, rows[i % len(rows)][None, :])
    return (time.perf_counter() - start) / repeats


__all__ = [
    "ClientSnapshot",
    "CoverageCalibration",
    "ExtractionMonitor",
    "MemoryMonitorStore",
    "MonitorStore",
    "MonitorVerdict",
    "RedisMonitorStore",
    "measure_observe_cost",
    "shapiro_w",
]
