"""Per-consumer judging for :class:`bastion.serve.theft.TheftDefence`: a consumer's detection state
(:class:`_Consumer`), its tables and the shared store, and the statistics over its distinct rows (shift, tail
and small-steps tests, the lean of its first rows, re-send detection). A mixin: the defence holds the policy,
the keyed thresholds, the tables and the lock; this module holds only the code that reads them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from bastion.serve._theft_policy import Flag, TheftPolicy
from bastion.serve.theft_state import dump_state, load_state

_LEAN_ROWS = 10


class _Consumer:
    __slots__ = (
        "apct",
        "bits",
        "day",
        "flag",
        "hist",
        "hist_n",
        "kept",
        "kept_n",
        "near",
        "pct",
        "rows",
        "rows_day",
        "seen",
    )

    def __init__(self, window: int, history: int, width: int) -> None:
        self.pct: deque[float] = deque(maxlen=window)
        self.apct: deque[float] = deque(maxlen=window)  # the same rows' percentiles in the rank view
        self.near: deque[bool] = deque(maxlen=window)
        self.hist = np.zeros((history, width), dtype=np.float32)
        self.hist_n = 0
        self.kept: deque[np.ndarray] = deque()
        self.kept_n = 0  # probes ever offered to ``kept`` (a uniform reservoir over all of them)
        self.seen: OrderedDict[bytes, None] = OrderedDict()
        self.rows = 0
        self.rows_day = 0
        self.day = -1
        self.bits = 0.0
        self.flag: Flag | None = None


@functools.lru_cache(maxsize=1)
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

    return ThreadpoolController()


def _log10_tail(k: int, n: int, p: float) -> float:
    """log10 P(Binomial(n, p) >= k) (``bdtrc``: a ufunc, ~100x cheaper per call than ``binom.logsf``)."""
    from scipy.special import bdtrc

    if k <= 0:
        return 0.0
    return math.log10(max(float(bdtrc(k - 1, n, p)), 1e-300))


class _TheftJudge:
    """The per-consumer state and statistics of :class:`~bastion.serve.theft.TheftDefence` (its base)."""

    policy: TheftPolicy
    n_features: int
    _shift_z: float
    _tail_log10: float
    _resend_tau: float
    _reservoir: np.random.Generator
    _identities: OrderedDict[str, _Consumer]
    _addresses: OrderedDict[str, _Consumer]
    _lock: threading.Lock
    _store: Any

    # -- state ----------------------------------------------------------------------------------------
    def _table(self, consumer: str) -> OrderedDict[str, _Consumer]:
        return self._addresses if consumer.startswith("addr:") else self._identities

    def _new(self) -> _Consumer:
        return _Consumer(self.policy.window, self.policy.history, self.n_features)

    def _state(self, consumer: str) -> _Consumer:
        table = self._table(consumer)
        s = table.get(consumer)
        if self._store is not None:  # the shared state is the truth; the local entry keeps the probes
            shared = self._new()
            blob = self._store.load(consumer)
            if blob is not None:
                load_state(blob, shared, Flag)
            if s is not None:
                shared.kept, shared.kept_n = s.kept, s.kept_n
            s = table[consumer] = shared
            table.move_to_end(consumer)
        elif s is None:
            s = table[consumer] = self._new()
        else:
            table.move_to_end(consumer)
        while len(table) > self.policy.max_consumers:
            _evict(table)
        return s

    def _shared(self, consumers: Sequence[str]) -> Any:
        return contextlib.nullcontext() if self._store is None else self._store.lock(consumers)

    def _save(self, consumers: Sequence[str], states: Sequence[_Consumer]) -> None:
        if self._store is not None:
            for c, s in zip(consumers, states, strict=True):
                self._store.save(c, dump_state(s))

    def _stats(self, s: _Consumer) -> tuple[float, dict[str, Any], str | None]:
        pol = self.policy
        n = len(s.pct)
        if n < pol.min_rows:
            return 0.0, {"distinct_rows": n}, None
        # shift and tail in both views (as sent; ranked within each row): a consumer counts as shifted only
        # if its rows are shifted in both, so a gain, offset or contrast curve (another scanner's brightness)
        # is not a shift, while rows out of distribution in shape stay out of it in either view
        views = []
        for pcts in (s.pct, s.apct):
            pct = np.fromiter(pcts, dtype=np.float64, count=n)
            tail = int((pct >= pol.tail_pct).sum())
            views.append((float(pct.mean()), tail, _log10_tail(tail, n, pol.tail_base)))
        mean = min(v[0] for v in views)
        z = (mean - 0.5) / math.sqrt(1.0 / 12.0 / n)
        tail, log10_p = max(views, key=lambda v: v[2])[1:]
        near = int(sum(s.near))
        near_log10_p = _log10_tail(near, n, pol.near_base)
        evidence = {
            "near_rows": near,
            "near_log10_p": round(near_log10_p, 2),
            "distinct_rows": n,
            "mean_percentile": round(mean, 4),
            "shift_z": round(z, 2),
            "tail_rows": tail,
            "tail_log10_p": round(log10_p, 2),
        }
        scores = {
            "shift": z / self._shift_z,
            "tail": log10_p / self._tail_log10,
            "small-steps": near_log10_p / self._tail_log10,
        }
        reason = max(scores, key=lambda r: scores[r])
        return max(scores.values()), evidence, reason

    def _keep(self, s: _Consumer, rows: np.ndarray) -> None:
        """Add probes to a uniform sample (``keep_queries``) of every probe the consumer was ever answered
        on, in answer order: rows sent after a theft dilute the theft-time probes only in proportion and
        cannot evict them (first-in-first-out let a thief wash its evidence with ``keep_queries`` rows)."""
        for row in rows:
            s.kept_n += 1
            if len(s.kept) < self.policy.keep_queries:
                s.kept.append(row)
            elif int(self._reservoir.integers(s.kept_n)) < self.policy.keep_queries:
                del s.kept[int(self._reservoir.integers(len(s.kept)))]
                s.kept.append(row)

    def _lean(self, s: _Consumer) -> float:
        """The shift score of a consumer's own rows from ``_LEAN_ROWS`` on (below ``min_rows`` too)."""
        n = len(s.pct)
        if n < _LEAN_ROWS:
            return 0.0
        mean = min(float(np.fromiter(v, dtype=np.float64, count=n).mean()) for v in (s.pct, s.apct))
        return (mean - 0.5) / math.sqrt(1.0 / 12.0 / n) / self._shift_z

    def _nearest(self, s: _Consumer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each new distinct row's distance to the consumer's earlier *counted* rows, and whether it is a
        re-send (within sensor noise of one of them: a re-scan, a retry, the next video frame). Only counted
        rows join the ring, so re-sends stay anchored: a chain of near-duplicates cannot walk away unseen,
        every step of it ends up counted against the last counted row. A flagged consumer has no re-sends:
        once other evidence flags it, its small steps count again towards the escalation."""
        xf = x.astype(np.float32)
        hist = s.hist[: min(s.hist_n, len(s.hist))]
        xsq = np.einsum("ij,ij->i", xf, xf)
        best = np.full(len(xf), np.inf)
        if len(hist):
            hsq = np.einsum("ij,ij->i", hist, hist)
            best = (hsq[None, :] + xsq[:, None] - 2.0 * (xf @ hist.T)).min(axis=1)
        within = xsq[None, :] + xsq[:, None] - 2.0 * (xf @ xf.T)
        resend_sq = self._resend_tau**2 if s.flag is None else -1.0
        resend = np.zeros(len(xf), dtype=bool)
        counted: list[int] = []
        for j, row in enumerate(xf):
            if counted:
                best[j] = min(best[j], float(within[j, counted].min()))
            if best[j] < resend_sq:
                resend[j] = True
                continue
            counted.append(j)
            s.hist[s.hist_n % len(s.hist)] = row
            s.hist_n += 1
        return np.sqrt(np.maximum(best, 0.0)), resend


def _evict(table: OrderedDict[str, _Consumer]) -> None:
    """Drop the least recently used state, passing over flagged ones (a flag outlives quieter clients)."""
    for n, (cid, s) in enumerate(table.items()):
        if n >= 64:
            break
        if s.flag is None:
            del table[cid]
            return
    table.popitem(last=False)
