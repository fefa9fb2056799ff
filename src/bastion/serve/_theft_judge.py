"""Per-consumer judging for :class:`bastion.serve.theft.TheftDefence`: a consumer's detection state
(:class:`_Consumer`), its tables and the shared store, and the statistics over its distinct rows (shift, tail
and small-steps tests — in the shift test, rows the keyed naturalness filter calls natural count as typical
ones —, the lean of its first rows, re-send detection). A mixin: the defence holds the policy,
the keyed thresholds, the tables and the lock; this module holds only the code that reads them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from bastion.evict import ValueTable
from bastion.serve._theft_mix import MixRule
from bastion.serve._theft_natural import LazyNatural
from bastion.serve._theft_policy import Flag, TheftPolicy
from bastion.serve._theft_pool import NEWCOMERS, PoolSteps, combined
from bastion.serve._theft_steps import StepTest
from bastion.serve.theft_state import dump_state, load_state

_LEAN_ROWS = 10
# no naturalness exemption in the shift test for a consumer whose small-steps score reaches this
_STEPS_EXEMPT = 0.5


class _Consumer:
    __slots__ = (
        "apct",
        "bits",
        "day",
        "flag",
        "hist",
        "hist_n",
        "hours",
        "kept",
        "kept_n",
        "mix",
        "nat",
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
        self.mix: deque[bool] = deque(maxlen=window)  # the same rows: mixtures of earlier rows (_theft_mix)
        self.hist = np.zeros((history, width), dtype=np.float32)
        self.hist_n = 0
        # per history slot: what the keyed naturalness filter called the row there (1 natural, 0 not, -1 not
        # asked yet); a cache, not state (not stored: recomputed from ``hist`` where needed)
        self.nat = np.full(history, -1, dtype=np.int8)
        self.kept: deque[np.ndarray] = deque()
        self.kept_n = 0  # probes ever offered to ``kept`` (a uniform reservoir over all of them)
        self.seen: OrderedDict[bytes, None] = OrderedDict()
        self.rows = 0
        self.rows_day = 0  # rows answered in the trailing 24 hours (``roll_budget``)
        self.day = -1  # the hour (since the epoch) of the newest of ``hours``' buckets; -1: none yet
        self.hours = np.zeros(24, dtype=np.int64)  # rows per hour of the last 24, a ring by hour index
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
    _natural: LazyNatural
    _near_tau: float
    _steps: StepTest | None
    _pool_steps: PoolSteps | None
    _mix: MixRule | None
    _probe_key: bytes
    _identities: ValueTable[str, _Consumer]
    _addresses: ValueTable[str, _Consumer]
    _lock: threading.Lock
    _store: Any

    # -- state ----------------------------------------------------------------------------------------
    def _table(self, consumer: str) -> ValueTable[str, _Consumer]:
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
            table.evict(keep=consumer)
        return s

    def _shared(self, consumers: Sequence[str]) -> Any:
        return contextlib.nullcontext() if self._store is None else self._store.lock(consumers)

    def _save(self, consumers: Sequence[str], states: Sequence[_Consumer]) -> None:
        if self._store is not None:
            for c, s in zip(consumers, states, strict=True):
                self._store.save(c, dump_state(s))

    def _stats(self, s: _Consumer, *, natural: bool = True) -> tuple[float, dict[str, Any], str | None]:
        pol = self.policy
        n = len(s.pct)
        if n < pol.min_rows:
            return 0.0, {"distinct_rows": n}, None
        # shift and tail in both views (as sent; ranked within each row): a consumer counts as shifted only
        # if its rows are shifted in both, so a gain, offset or contrast curve (another scanner's brightness)
        # is not a shift, while rows out of distribution in shape stay out of it in either view
        pcts = [np.fromiter(v, dtype=np.float64, count=n) for v in (s.pct, s.apct)]
        near = int(sum(s.near))
        near_log10_p = _log10_tail(near, len(s.near), pol.near_base)  # (with the step test's passes)
        mean = min(float(v.mean()) for v in pcts)
        z = (mean - 0.5) / math.sqrt(1.0 / 12.0 / n)
        exempt = 0
        if natural and z >= pol.corroborate_z and near_log10_p / self._tail_log10 < _STEPS_EXEMPT:
            # rows the keyed naturalness filter calls natural are no evidence of a shift (a review queue of
            # low-margin natural rows sits far from its classes' training rows): each counts as a typical row
            # (percentile 0.5, what a natural row is on average: padding a stream with natural rows dilutes
            # it no more than before); rows in the tail, and every row of a consumer that walks in small steps
            # (Jacobian steps look like sensor noise to the filter), count as they are. Never raises z.
            mask = self._natural_mask(s, n, (pcts[0] < pol.tail_pct) | (pcts[1] < pol.tail_pct))
            if mask is not None and mask.any():
                pcts = [np.where(mask & (v < pol.tail_pct), 0.5, v) for v in pcts]
                typical = min(float(v.mean()) for v in pcts)
                if typical < mean:
                    mean, z = typical, (typical - 0.5) / math.sqrt(1.0 / 12.0 / n)
                    exempt = int(mask.sum())
        views = []
        for pct in pcts:  # (the tail counts are the same with or without the exemption)
            tail = int((pct >= pol.tail_pct).sum())
            views.append((tail, _log10_tail(tail, n, pol.tail_base)))
        tail, log10_p = max(views, key=lambda v: v[1])
        evidence = {
            "near_rows": near,
            "near_log10_p": round(near_log10_p, 2),
            "distinct_rows": n,
            "mean_percentile": round(mean, 4),
            "shift_z": round(z, 2),
            "tail_rows": tail,
            "tail_log10_p": round(log10_p, 2),
        }
        if exempt:
            evidence["natural_rows"] = exempt
        scores = {
            "shift": z / self._shift_z,
            "tail": log10_p / self._tail_log10,
            "small-steps": near_log10_p / self._tail_log10,
        }
        if self._mix is not None and len(s.mix) >= pol.min_rows:
            mixed = int(sum(s.mix))
            mix_log10_p = _log10_tail(mixed, len(s.mix), self._mix.base)
            evidence.update(mixture_rows=mixed, mixture_log10_p=round(mix_log10_p, 2))
            mix_score = mix_log10_p / self._tail_log10
            # a consumer that sends mixes of its own rows is synthesising queries: once the test fires, it
            # is strong evidence (every row misinformed), not a shift that may be a new scanner
            scores["mixtures"] = max(mix_score, pol.strong_score) if mix_score >= 1.0 else mix_score
            if not natural:  # the newcomers' pool: a shifted Sybil's mixtures, shift and mixtures together
                scores["shift+mixtures"] = (
                    combined(z, mix_log10_p, threshold=self._tail_log10) / self._tail_log10
                )
        reason = max(scores, key=lambda r: scores[r])
        return max(scores.values()), evidence, reason

    def _mixed(self, s: _Consumer, resend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of the rows ``_nearest`` just judged are mixtures of the consumer's earlier counted rows
        (``_theft_mix``; re-sends never: they did not join the history), and which are interpolated frames
        between its earlier rows (``_theft_segment``: ordinary, no mixture)."""
        out = np.zeros(len(resend), dtype=bool)
        frames = np.zeros(len(resend), dtype=bool)
        if self._mix is not None:
            m = int((~resend).sum())
            framed = np.zeros(m, dtype=bool)
            out[~resend] = self._mix.ratios(s.hist, s.hist_n, m, frames=framed) < self._mix.threshold
            frames[~resend] = framed
        return out, frames

    def _natural_mask(self, s: _Consumer, n: int, ask: np.ndarray) -> np.ndarray | None:
        """Which of the consumer's last ``n`` counted rows (those its percentiles belong to: the counted rows
        are the rows ``_nearest`` adds to ``hist``, in order) the keyed filter calls natural, asking it about
        the rows in ``ask`` only (cached per history slot); ``None`` where the filter is off (not fitted, or
        failed its own check) or the history does not reach back ``n`` rows."""
        f = self._natural.get()
        h = len(s.hist)
        if f is None or n > h or s.hist_n < n:
            return None
        slots = np.arange(s.hist_n - n, s.hist_n) % h
        todo = slots[ask & (s.nat[slots] < 0)]
        if len(todo):
            s.nat[todo] = f.natural(s.hist[todo].astype(np.float64))
        return np.asarray(ask & (s.nat[slots] == 1), dtype=bool)

    def _keep(self, consumer: str, s: _Consumer, rows: np.ndarray) -> None:
        """Add probes to a uniform sample (``keep_queries``) of every probe the consumer was ever answered
        on, in answer order: rows sent after a theft dilute the theft-time probes only in proportion and
        cannot evict them (first-in-first-out let a thief wash its evidence with ``keep_queries`` rows).
        The reservoir's draws are keyed per consumer and probe number (HMAC), so what is kept depends on the
        key and this consumer's own probes only, not on other consumers' traffic or its interleaving."""
        tag = consumer.encode("utf-8") + b"\0"
        for row in rows:
            s.kept_n += 1
            if len(s.kept) < self.policy.keep_queries:
                s.kept.append(row)
                continue
            d = hmac.new(self._probe_key, tag + s.kept_n.to_bytes(8, "big"), hashlib.sha256).digest()
            if int.from_bytes(d[:8], "big") % s.kept_n < self.policy.keep_queries:
                del s.kept[int.from_bytes(d[8:16], "big") % len(s.kept)]
                s.kept.append(row)

    def _lean(self, s: _Consumer) -> float:
        """The shift score of a consumer's own rows from ``_LEAN_ROWS`` on (below ``min_rows`` too)."""
        n = len(s.pct)
        if n < _LEAN_ROWS:
            return 0.0
        mean = min(float(np.fromiter(v, dtype=np.float64, count=n).mean()) for v in (s.pct, s.apct))
        return (mean - 0.5) / math.sqrt(1.0 / 12.0 / n) / self._shift_z

    def _nearest(self, s: _Consumer, x: np.ndarray, who: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Each new distinct row's distance to the consumer's earlier *counted* rows, and whether it is a
        re-send (within sensor noise of one of them: a re-scan, a retry, the next video frame). Only counted
        rows join the ring, so re-sends stay anchored: a chain of near-duplicates cannot walk away unseen,
        every step of it ends up counted against the last counted row. With the step test on (``predict``
        given, :mod:`bastion.serve._theft_steps`), a row within the small-steps radius whose step from its
        nearest counted row is directionless — it moves the model's answer no more than keyed random-sign
        steps of the same sizes: a noisier re-send, another bit depth — is a re-send too, so only
        informative steps (a Jacobian walk's) count as small steps (a directionless one still counts in
        that test's denominator: many noisy copies of one input are many tests). A flagged consumer has no
        re-sends:
        once other evidence flags it, its small steps count again towards the escalation. The newcomers'
        pool uses its own step test, which also counts steps along the data, from the re-send radius in
        (:class:`~bastion.serve._theft_pool.PoolSteps`)."""
        xf = x.astype(np.float32)
        hist = s.hist[: min(s.hist_n, len(s.hist))]
        xsq = np.einsum("ij,ij->i", xf, xf)
        best = np.full(len(xf), np.inf)
        anchor = np.zeros_like(xf)  # each row's nearest counted row
        if len(hist):
            hsq = np.einsum("ij,ij->i", hist, hist)
            dist = hsq[None, :] + xsq[:, None] - 2.0 * (xf @ hist.T)
            best = dist.min(axis=1)
            anchor[:] = hist[dist.argmin(axis=1)]  # (copied: the loop below overwrites ring slots)
            close = np.argsort(dist, axis=1)[:, :3]  # each row's 3 nearest counted rows, for off_narrow
            close_rows, close_sq = hist[close], np.take_along_axis(dist, close, axis=1)
        within = xsq[None, :] + xsq[:, None] - 2.0 * (xf @ xf.T)
        resend_sq = self._resend_tau**2 if s.flag is None else -1.0
        pool = s is self._identities.get(NEWCOMERS)  # the newcomers' pool: its own step test (_theft_pool)
        steps: StepTest | PoolSteps | None = None
        if s.flag is None:
            steps = self._pool_steps if pool else self._steps
        near_sq = self._near_tau**2
        resend = np.zeros(len(xf), dtype=bool)
        counted: list[int] = []
        for j, row in enumerate(xf):
            if counted:
                w = int(np.argmin(within[j, counted]))
                if within[j, counted[w]] < best[j]:
                    best[j], anchor[j] = float(within[j, counted[w]]), xf[counted[w]]
            if best[j] < resend_sq:
                # the pool's re-sends are tested too: one along the data is a step, however short (PoolSteps)
                if not (pool and isinstance(steps, PoolSteps)):
                    resend[j] = True
                    continue
                if not steps.along(row[None], anchor[j][None])[0]:
                    s.near.append(False)  # (tested: in the share's denominator, as a directionless step)
                    resend[j] = True
                    continue
            if (
                steps is not None
                and best[j] < near_sq
                and not steps.informative(row[None], anchor[j][None], who.encode(), counted=s.hist_n)[0]
            ):
                # each noisy copy is a fresh test with a small chance of a false "informative": the tests
                # passed count in the small-steps share (``_stats``), as distinct natural rows would
                s.near.append(False)
                resend[j] = True
                continue
            if steps is not None and best[j] >= near_sq and len(hist):
                # a step off one of the consumer's narrow re-sends (a walk that left its anchor's band
                # through a re-send, ``_theft_steps``): as near as that re-send
                best[j] = min(best[j], steps.off_narrow(who.encode(), row, close_rows[j], close_sq[j]))
            counted.append(j)
            s.hist[s.hist_n % len(s.hist)] = row
            s.nat[s.hist_n % len(s.hist)] = -1
            s.hist_n += 1
        return np.sqrt(np.maximum(best, 0.0)), resend


def roll_budget(s: _Consumer, hour: int) -> None:
    """Move the consumer's row-budget window (24 hourly buckets) to ``hour``: ``rows_day`` is then the rows
    answered in the trailing 24 hours — a sliding window, not the UTC day (which a thief could spend twice
    in ten minutes across midnight). State stored without buckets (before round 8) counts its day's rows
    in this hour; a clock that steps back keeps the newest bucket."""
    if s.day < 0:
        s.hours[:] = 0
        s.hours[hour % 24] = s.rows_day
    elif hour - s.day >= 24:
        s.hours[:] = 0
    else:
        for h in range(s.day + 1, hour + 1):
            s.hours[h % 24] = 0
    s.day = max(hour, s.day)
    s.rows_day = int(s.hours.sum())


def worth(s: _Consumer) -> tuple[bool, int]:
    """What a state is worth keeping under the cap (:class:`~bastion.evict.ValueTable`): a flagged one before
    any unflagged one, then the one with more rows answered — a flood of one-row identities evicts only
    its own kind, never a thief's evidence, flag and budget."""
    return (s.flag is not None, s.rows)
