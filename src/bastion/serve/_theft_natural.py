"""A keyed naturalness filter for the theft defence's response: is a row a real data point or one made from
real ones (an interpolation of two rows, a Jacobian-like step)?

Built from the reference rows the defence already holds, with a generator derived from the deployment key,
and kept in memory only (never serialised). Label 1: the reference rows, as they are and with a nuisance
(a gain on images, a little sensor noise); label 0: rows made from them — mixups of keyed random pairs with
λ ∈ [0.1, 0.9] (within and between classes, half with the same nuisance) and signed steps on a random subset
of features. A gradient-boosted classifier separates them; its threshold is the ``fpr`` quantile of its
scores on held-out reference rows.

It is used only where it works: on the held-out rows it must call at least ``min_catch`` of the synthetic
rows made from them synthetic at that threshold, or :func:`build_natural` returns ``None`` (breast_cancer's
interpolations of 30 correlated measurements are not told from natural rows: about 0.2 at 2 % FPR; digits'
double strokes and grey pixels are, about 0.95). The defence uses it twice. In the response, a flagged
consumer's rows that it calls natural keep the model's argmax (poisoned and truncated, watermarked and
label-marked as any flagged answer), the others are misinformed as before — a thief's interpolations are
not answered. In judging (:meth:`bastion.serve._theft_judge._TheftJudge._stats`), once a consumer's shift z
reaches ``corroborate_z``, its rows that the filter calls natural count as typical rows (percentile 0.5) in
the shift test, except rows in the tail and every row of a consumer that walks in small steps — so a review
queue of natural low-margin rows is not flagged at all. Where the filter is off, neither changes anything.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.serve.responses import keyed_generator


@dataclass(frozen=True)
class NaturalFilter:
    """The fitted classifier and its threshold (probability of label 1 at or above it: natural)."""

    model: Any
    threshold: float
    catch: float  # held-out synthetic rows called synthetic at the threshold

    def natural(self, rows: np.ndarray) -> np.ndarray:
        """A mask: which rows (n, features) the filter calls natural."""
        if len(rows) == 0:
            return np.zeros(0, dtype=bool)
        with _one_thread():
            return np.asarray(self.model.predict_proba(rows)[:, 1] >= self.threshold, dtype=bool)


@functools.lru_cache(maxsize=1)
def _openmp() -> Any:
    from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

    return ThreadpoolController()


def _one_thread() -> Any:
    """Gradient boosting's OpenMP on one thread: on a busy machine its default thread pool made the fit
    7-11x slower (digits, 2 shared cores: 10-17 s vs 1.5 s), and a request's few rows gain nothing from it."""
    return _openmp().limit(limits=1, user_api="openmp")


def _made(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, nuisance: Any) -> np.ndarray:
    """``n`` rows made from ``x``: half mixups (half of them with the nuisance), half signed steps."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    a, b = rng.integers(0, len(x), n), rng.integers(0, len(x), n)
    for i in np.flatnonzero(rng.uniform(size=n) < 0.5):  # within a class
        b[i] = rng.choice(np.flatnonzero(y == y[a[i]]))
    lam = rng.uniform(0.1, 0.9, (n, 1))
    made = lam * x[a] + (1.0 - lam) * x[b]
    made = np.where(rng.uniform(size=(n, 1)) < 0.5, nuisance(made), made)
    k = n // 2
    base = x[rng.integers(0, len(x), k)]
    step = np.sign(rng.normal(size=base.shape)) * rng.uniform(0.03, 0.3, (k, 1)) * (hi - lo)
    step *= rng.uniform(size=base.shape) < rng.uniform(0.3, 1.0, (k, 1))
    made[:k] = np.clip(base + step, lo, hi)
    return made


def build_natural(
    *,
    x: np.ndarray,
    y: np.ndarray,
    secret: bytes,
    fpr: float,
    min_catch: float,
    max_rows: int = 2000,
) -> NaturalFilter | None:
    """Fit the filter on the reference rows ``x`` (n, features) with labels ``y``; ``None`` if it does not
    separate held-out synthetic rows from held-out natural ones well enough (``min_catch`` at ``fpr``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = keyed_generator(secret, "natural")
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y).reshape(-1)
    if len(x) < 50:
        return None
    if len(x) > max_rows:
        pick = rng.choice(len(x), max_rows, replace=False)
        x, y = x[pick], y[pick]
    lo, hi = x.min(axis=0), x.max(axis=0)
    gain = bool(lo.min() >= 0.0)  # non-negative features (images, counts): a gain is a nuisance too

    def nuisance(z: np.ndarray) -> np.ndarray:
        g = rng.uniform(0.75, 1.3, (len(z), 1)) if gain else 1.0
        sd = rng.uniform(0.0, 0.015, (len(z), 1)) * (hi - lo)
        return np.clip(z * g + rng.normal(size=z.shape) * sd, lo, hi)

    order = rng.permutation(len(x))
    cut = int(0.8 * len(x))
    fit, held = order[:cut], order[cut:]
    nat = np.concatenate([x[fit], nuisance(x[fit]), nuisance(x[fit])])
    made = _made(x[fit], y[fit], len(nat), rng, nuisance)
    model = HistGradientBoostingClassifier(max_iter=150, random_state=int(rng.integers(1 << 30)))
    test = _made(x[held], y[held], 4 * len(held), rng, nuisance)
    with _one_thread():
        model.fit(np.concatenate([nat, made]), np.r_[np.ones(len(nat)), np.zeros(len(made))])
        threshold = float(np.quantile(model.predict_proba(x[held])[:, 1], fpr))
        catch = float((model.predict_proba(test)[:, 1] < threshold).mean())
    if catch < min_catch:
        return None
    return NaturalFilter(model=model, threshold=threshold, catch=catch)


# built filters of this process, by a digest of (secret, reference rows, settings): tests and workers that
# build many defences over one key and one reference fit it once (memory only, a few entries)
_BUILT: OrderedDict[bytes, NaturalFilter | None] = OrderedDict()
_BUILT_LOCK = threading.Lock()


class LazyNatural:
    """The filter, fitted on first use (about 1 s on digits): a flagged consumer's answer, or judging a
    consumer whose shift z reaches ``corroborate_z`` (then under the defence's lock; once per process and
    key)."""

    def __init__(self, *, x: Any, y: Any, secret: bytes, fpr: float, min_catch: float) -> None:
        self._x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        self._y = np.asarray(y).reshape(-1)
        self._secret, self._fpr, self._min_catch = secret, float(fpr), float(min_catch)
        self._filter: NaturalFilter | None = None
        self._done = self._fpr <= 0.0  # fpr 0: switched off
        self._lock = threading.Lock()

    def get(self) -> NaturalFilter | None:
        with self._lock:
            if not self._done:
                h = hashlib.blake2b(self._secret, digest_size=32)
                for part in (self._x, self._y, np.array([self._fpr, self._min_catch])):
                    h.update(np.ascontiguousarray(part).tobytes())
                digest = h.digest()
                with _BUILT_LOCK:
                    hit = digest in _BUILT
                    built = _BUILT.get(digest)
                if not hit:
                    built = build_natural(
                        x=self._x, y=self._y, secret=self._secret, fpr=self._fpr, min_catch=self._min_catch
                    )
                    with _BUILT_LOCK:
                        _BUILT[digest] = built
                        while len(_BUILT) > 8:
                            _BUILT.popitem(last=False)
                self._filter, self._done = built, True
            return self._filter

    def natural(self, rows: np.ndarray) -> np.ndarray:
        """Which rows the filter calls natural; none where it is off or did not pass its check."""
        f = self.get()
        return np.zeros(len(rows), dtype=bool) if f is None else f.natural(rows)
