"""Model-theft defence: keyed per-deployment detection and escalating responses, per consumer (issue 20).

How it decides and answers (the distribution-shift, small-steps, PRADA/coverage and information tests; the
escalating responses; the keyed watermarks and evidence; where every random part comes from) is described in
docs/internals.md, "The model-theft defence"; the figures are in docs/benchmarks.md, "Model theft".

Layout: :class:`TheftDefence` is one state machine (one lock, one consumer table); this module holds its
construction and the request path. Its per-consumer state and statistics live in
:mod:`bastion.serve._theft_judge` and its admin and evidence export in :mod:`bastion.serve._theft_admin`
(mixins it inherits), its policy and results in :mod:`bastion.serve._theft_policy`, the consumer's view of
a defended model in :mod:`bastion.serve._theft_defended` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bastion.errors import AccessDenied, BudgetExhausted, InvalidInput
from bastion.evict import ValueTable
from bastion.serve._theft_admin import _TheftAdmin
from bastion.serve._theft_defended import DefendedModel
from bastion.serve._theft_judge import _blas, _Consumer, roll_budget, worth
from bastion.serve._theft_mix import MixRule
from bastion.serve._theft_natural import LazyNatural
from bastion.serve._theft_policy import THEFT_LABEL, Answer, Flag, TheftPolicy, derive
from bastion.serve._theft_pool import (
    NEWCOMERS,
    NewcomerQuota,
    natural_rows,
    pool_steps,
    rescans,
    with_newcomers,
)
from bastion.serve._theft_prada import tune_prada
from bastion.serve._theft_steps import step_test
from bastion.serve.config import MonitorConfig
from bastion.serve.monitor import ExtractionMonitor
from bastion.serve.reference import ReferenceScorer, projection_scale
from bastion.serve.responses import (
    decoy_cells,
    decoy_key,
    keyed_generator,
    least_likely,
    misinform,
    misinform_far,
    poison,
    truncate,
)

# An identity shares its address's flag once its own score, or the lean of its own first rows, reaches this
_SHARED_LEAN = 0.5


class TheftDefence(_TheftAdmin):
    """Per-consumer theft detection and responses for one served model. Thread-safe; state in memory."""

    def __init__(
        self,
        *,
        reference_x: Any,
        reference_y: Any,
        n_classes: int,
        policy: TheftPolicy | None = None,
        secret: bytes | None = None,
        watermark: Any = None,
        labels: Any = None,
        store: Any = None,
        center: float | np.ndarray = 0.0,
        clock: Callable[[], float] = time.time,
        predict: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        self.policy = policy or TheftPolicy()
        self._secret = secret if secret is not None else os.urandom(32)
        self.n_classes = int(n_classes)
        x = np.asarray(reference_x, dtype=np.float64)
        self.n_features = int(np.prod(x.shape[1:]))
        self.scorer = ReferenceScorer(
            x=x,
            y=np.asarray(reference_y),
            n_classes=self.n_classes,
            k=self.policy.k,
            max_rows=self.policy.max_reference,
            rng=keyed_generator(derive(self._secret, "reference"), "subsample"),
        )
        jitter = keyed_generator(derive(self._secret, "thresholds"), "jitter").uniform(0.0, 0.1, 2)
        self._shift_z = self.policy.shift_z * (1.0 - jitter[0])
        self._tail_log10 = self.policy.tail_log10_p * (1.0 - jitter[1])
        nn1 = self.scorer.nn1
        self._near_tau = float(nn1[int(self.policy.near_quantile * (len(nn1) - 1))])
        # a re-send: within sensor noise of resend_noise x each feature's range (1.5 sd), and well inside the
        # small-steps radius
        span = np.ptp(x.reshape(len(x), -1), axis=0)
        noise = 1.5 * self.policy.resend_noise * math.sqrt(2.0 * float((span**2).sum()))
        self._resend_tau = min(self.policy.resend_frac * self._near_tau, noise)
        self._cell_scale = projection_scale(x)  # the data's spread: the decoy's cells are 2 wide
        # the decoy's key: the keyed draw whose label is closest to independent of the true label over the
        # reference rows; far rows get one fixed ranking, rarest class first
        self._mis_key = decoy_key(
            np.concatenate(self.scorer.refs),
            np.concatenate([np.full(len(r), c) for c, r in enumerate(self.scorer.refs)]),
            secret=derive(self._secret, "misinformation"),
            scale=self._cell_scale,
            n_classes=self.n_classes,
        )
        self._far_ranking = least_likely(np.asarray(reference_y), self.n_classes)
        self._poison_key = derive(self._secret, "poison")
        self._natural = LazyNatural(
            x=x,
            y=reference_y,
            secret=derive(self._secret, "natural"),
            fpr=self.policy.natural_fpr,
            min_catch=self.policy.natural_min_catch,
        )
        self._newcomers = NewcomerQuota(
            max_identities=self.policy.max_consumers, max_rows=self.policy.min_rows
        )
        self._probe_key = derive(self._secret, "probes")  # the probe reservoir's draws, keyed per consumer
        self._steps = step_test(self, predict)  # None without predict: every step in the band counts
        self._pool_steps = pool_steps(self)  # the newcomers' pool's: also steps along the data (_theft_pool)
        self._mix = (  # rows in the hull of the consumer's own earlier rows (_theft_mix)
            MixRule(
                secret=derive(self._secret, "mixtures"),
                reference=x,
                history=self.policy.history,
                floor=self.policy.mix_floor,
                sensor=self.policy.sensor_rows,
                predict=predict,
            )
            if self.policy.mixtures
            else None
        )
        # coverage calibrated per key on the reference rows, so no key's hyperplanes flag natural traffic
        self.monitor = ExtractionMonitor(
            config=MonitorConfig(),
            n_features=self.n_features,
            center=center,
            key=derive(self._secret, "monitor"),
            reference=x.reshape(len(x), -1),
            reference_labels=np.asarray(reference_y).reshape(-1),
        )
        tune_prada(self.monitor, x, self._secret)  # glitch re-sends count once; a per-key threshold
        self.watermark = watermark
        self.labels = labels  # a bastion.watermark.labels.LabelMarker: DAWN-style label marks, or None
        self._clock = clock
        # Identities and client addresses in separate tables (max_consumers each): a flood of addresses
        # cannot evict an identity's state (its daily budget, flag and evidence).
        # Each table evicts its least valuable state (``worth``: unflagged, fewest rows), not the oldest: a
        # flood of throw-away identities cannot evict a thief's state either.
        evict_seed = int.from_bytes(derive(self._secret, "evict")[:8], "big")
        self._identities: ValueTable[str, _Consumer] = ValueTable(worth, seed=evict_seed)
        self._addresses: ValueTable[str, _Consumer] = ValueTable(worth, seed=evict_seed + 1)
        self._lock = threading.Lock()
        # a bastion.serve.theft_state.RedisTheftStore: detection state shared by every worker, or None
        self._store = store

    # -- the request path ---------------------------------------------------------------------------
    def respond(self, *, consumers: Sequence[str], x: Any, proba: Any) -> Answer:
        """Judge a request of ``consumers`` (identity first, then e.g. ``addr:<ip>``) and shape its answer."""
        # The products here are small (a request × a few thousand rows): one BLAS thread is 10-40x faster
        # than a pool that has to wake on a busy machine.
        with _blas().limit(limits=1, user_api="blas"):
            return self._respond(consumers=with_newcomers(self, consumers), x=x, proba=proba)

    def _respond(self, *, consumers: Sequence[str], x: Any, proba: Any) -> Answer:
        if not consumers:
            raise InvalidInput("respond needs at least one consumer id")
        pol = self.policy
        rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        p = np.asarray(proba, dtype=np.float64)
        if rows.shape[1] != self.n_features or p.shape != (len(rows), self.n_classes):
            raise InvalidInput("x and proba do not match the defended model")
        now = self._clock()
        hour = int(now // 3600)
        pred = p.argmax(axis=1)
        pct, ratio = self.scorer.score(rows, pred)
        apct, _ = self.scorer.score_ranked(rows, pred)
        rounded = np.round(rows, 5)
        digests = [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rounded]
        best_score, flagged, newly, reason = 0.0, False, False, None
        own_score = 0.0  # the identity's own: its score or flag, or how far its few rows lean out
        own_rows = 0  # the identity's distinct rows in its window
        with self._lock, self._shared(consumers):
            states = [self._state(c) for c in consumers]
            if self._pool_steps is not None and NEWCOMERS in consumers:  # its steps across accounts
                self._pool_steps.sender(states[0], rows, consumers[0])
            for s in states:
                roll_budget(s, hour)  # the budget is per trailing 24 hours, not per UTC day
            if states[0].rows_day + len(rows) > pol.daily_rows:  # the identity's budget (not a shared NAT's)
                raise BudgetExhausted(f"row budget of {pol.daily_rows} per 24 hours reached")
            for via, st in zip(consumers[1:], states[1:], strict=True):  # every identity behind an address
                if (
                    pol.address_rows
                    and via.startswith("addr:")
                    and st.rows_day + len(rows) > pol.address_rows
                ):
                    raise BudgetExhausted(f"the address's row budget of {pol.address_rows} per 24 h reached")
            fresh: list[int] = []
            answered: list[int] = []  # the identity's rows new to it, counted or not (re-sends too)
            for cid, s in zip(consumers, states, strict=True):
                s.rows += len(rows)
                s.rows_day += len(rows)
                s.hours[s.day % 24] += len(rows)
                new: list[int] = []
                for i, dg in enumerate(digests):
                    if dg in s.seen:
                        continue
                    s.seen[dg] = None
                    if len(s.seen) > 4 * pol.window:
                        s.seen.popitem(last=False)
                    new.append(i)
                if cid == consumers[0]:
                    answered = list(new)
                if new:
                    regain = rescans(self, s, rows[new]) if cid == NEWCOMERS else False  # (before _nearest)
                    nearest, resend = self._nearest(s, rows[new], who=cid)
                    mixed, framed = self._mixed(s, resend)  # mixtures of the consumer's earlier rows
                    # a re-send (sensor noise on a counted row) counts once, like an exact repeat
                    counted = ~resend
                    if cid == NEWCOMERS:  # each newcomer's first rows new to the pool (_theft_pool)
                        counted &= ~regain  # ... and so does the same input at another gain
                        natural = natural_rows(self, states[0], fresh, new)
                        counted = self._newcomers.take(consumers[0], counted, natural)
                    new = [i for i, c in zip(new, counted, strict=True) if c]
                    for i, dist, frame in zip(new, nearest[counted], framed[counted], strict=True):
                        # an interpolated frame between two of the consumer's rows that the model answers
                        # alike (_theft_segment) adds nothing that its ends did not: in the shift test it is
                        # a typical row (a blend sits further from the data than its ends), unless it is in
                        # the tail (then so are its ends: frames between far-out rows count as they are)
                        s.pct.append(0.5 if frame and pct[i] < pol.tail_pct else float(pct[i]))
                        s.apct.append(0.5 if frame and apct[i] < pol.tail_pct else float(apct[i]))
                        s.near.append(bool(dist < self._near_tau))
                    s.mix.extend(bool(m) for m in mixed[counted])
                if cid == consumers[0]:
                    fresh = new
                score, evidence, why = self._stats(s, natural=cid != NEWCOMERS)
                if s.flag is not None and now - s.flag.last_seen > pol.flag_ttl_s:
                    s.flag = None  # decayed: no new evidence for flag_ttl_s
                if score >= 1.0 and why is not None:
                    evidence.update(rows=s.rows, rows_today=s.rows_day)
                    newly = newly or s.flag is None
                    if s.flag is None or score >= s.flag.score:
                        since = s.flag.since if s.flag is not None else now
                        s.flag = Flag(cid, why, round(score, 3), since, now, evidence)
                    else:  # new evidence renews the flag; its peak score (and that evidence) stays
                        s.flag = dataclasses.replace(s.flag, last_seen=now)
                if s.flag is not None:
                    flagged = True
                    reason = reason or s.flag.reason
                    score = max(score, s.flag.score)
                if cid == NEWCOMERS:  # the newcomers' pool acts only through its flag, and strongly
                    score = 0.0 if s.flag is None else pol.strong_score
                best_score = max(best_score, score)
                if cid == consumers[0]:
                    own_score, own_rows = max(score, self._lean(s)), len(s.pct)
            for s in states:
                s.bits += len(rows) * (math.log2(self.n_classes) if flagged else 32.0 * self.n_classes)
            self._save(consumers, states)
        if fresh:  # PRADA + keyed coverage over the identity's distinct rows: corroborating evidence only
            verdict = self.monitor.observe(consumers[0], rows[fresh])
            if verdict.flagged and not flagged and best_score * self._shift_z >= pol.corroborate_z:
                with self._lock, self._shared(consumers[:1]):
                    s = self._state(consumers[0])
                    s.flag = Flag(
                        consumers[0],
                        f"corroborated {verdict.reason}",
                        1.0,
                        now,
                        now,
                        {"monitor": verdict.reason},
                    )
                    self._save(consumers[:1], [s])
                flagged = newly = True
                reason = s.flag.reason
                best_score = own_score = max(best_score, 1.0)
        if pol.block_score is not None and best_score >= pol.block_score:
            raise AccessDenied("client blocked by the extraction defence")
        mis = ratio > pol.hard_ood
        shaped = flagged  # poisoned and truncated
        if flagged:
            # a flag on the address alone (a shared NAT, proxy or egress: another client's doing) leaves an
            # identity answered as usual once it has min_rows rows of its own and they look natural; until
            # then it cannot be told from accounts rotated behind one address and gets the address's response
            shaped = own_score >= _SHARED_LEAN or own_rows < pol.min_rows
            if shaped:
                mis |= pct >= pol.flagged_ood_pct
                if best_score >= pol.strong_score:
                    mis[:] = True
                elif mis.any():  # below strong: rows the keyed filter calls natural keep the argmax
                    mis &= ~(self._natural.natural(rows) & (ratio <= pol.hard_ood))
        out = p.copy()
        # a newcomer is answered with the newcomers' pool's wave and its probes are the pool's, so a copy
        # trained on many small accounts names the pool (_theft_pool)
        wm_id = NEWCOMERS if NEWCOMERS in consumers else consumers[0]
        if self.watermark is not None:
            out = self.watermark.apply(wm_id, rows, out)
        if shaped:
            dig = np.array([int.from_bytes(d[:8], "big") for d in digests], dtype=np.uint64)
            out = poison(
                out, secret=self._poison_key, consumer=consumers[0], eps=pol.poison_eps, x_digest=dig
            )
            out = truncate(out, top_k=pol.top_k, decimals=pol.decimals)
        # beyond every training row of *every* class (not only the predicted one: which rows get the one label
        # must not say what the model predicts): one label for all
        far = mis & (ratio > pol.far_ratio)
        for c in range(self.n_classes):
            if far.any():
                far[far] = self.scorer.score(rows[far], np.full(int(far.sum()), c))[1] > pol.far_ratio
        near = mis & ~far
        if near.any():
            cells = decoy_cells(rows[near], secret=self._mis_key, scale=self._cell_scale)
            out[near] = misinform(out[near], secret=self._mis_key, cells=cells)
        if far.any():  # (a keyed decoy out there is a random function: a copy extrapolates it by luck)
            out[far] = misinform_far(out[far], ranking=self._far_ranking)
        marked = np.zeros(len(rows), dtype=bool)
        if self.labels is not None:  # label marks on the rows not misinformed (all rows count for its cap)
            out, marked = self.labels.mark(consumers[0], rows, out, markable=~mis)
        if self.watermark is not None and answered:
            # rows whose answer carries the consumer's score signal (a label-marked answer's swapped top
            # class would be an outlier in the score test: those rows are the label marks' probes), whether
            # or not the detector counted them: a re-send's answer carries the wave too, and a seeded prober
            # whose narrow probes are re-sends keeps few counted rows (fix20y: 50 seeds + 500 probes, 19)
            keep = [i for i in answered if not mis[i] and not marked[i]]
            with self._lock:
                self._keep(wm_id, self._table(wm_id)[wm_id], rows[keep].astype(np.float32))
        return Answer(
            proba=out,
            flagged=flagged,
            score=round(best_score, 3),
            misinformed=int(mis.sum()),
            poisoned=shaped,
            truncated=shaped,
            newly_flagged=newly,
            reason=reason,
        )


def build_defence(
    *,
    key: Any,
    reference_x: Any,
    reference_y: Any,
    n_classes: int,
    policy: TheftPolicy | None = None,
    center: float | np.ndarray = 0.0,
    clock: Callable[[], float] = time.time,
    store: Any = None,
    predict: Callable[[np.ndarray], Any] | None = None,
    watermark_eps: float = 0.25,
    deployment_eps: float = 0.2,
) -> TheftDefence:
    """The default defence for a deployment key (a :class:`~bastion.watermark.keys.WatermarkKey` from the
    key ring): the detector's secret and the per-consumer watermark are HKDF sub-keys of it. ``predict``
    (rows -> the served model's probabilities, what the gateway answers with) turns on the informative-step
    test (:mod:`bastion.serve._theft_steps`); without it every small step counts, as before round 9.
    ``watermark_eps`` / ``deployment_eps``: the per-consumer and deployment-wide waves' amplitudes."""
    from bastion.watermark.api import WAVE_FORMAT, ConsumerWatermark
    from bastion.watermark.labels import MAX_LABEL_RATE, LabelMarker

    x = np.asarray(reference_x, dtype=np.float64)
    nf, scale = int(np.prod(x.shape[1:])), projection_scale(x)
    wm = ConsumerWatermark(
        key,
        n_features=nf,
        n_classes=n_classes,
        scale=scale,
        cycles=0.5,
        eps=watermark_eps,
        deployment_eps=deployment_eps,
        wave_format=WAVE_FORMAT,  # the deployment wave's carrier keyed per region (attack20g)
    )
    # 1 % of each consumer's cells, capped at 1 % of its distinct cells (labels.py): a benign client pays at
    # most one mark per 100 distinct cells, a thief's copy carries as many marks as at 0.5 % uncapped
    labels = LabelMarker(key, n_features=nf, n_classes=n_classes, scale=scale, rate=MAX_LABEL_RATE)
    return TheftDefence(
        reference_x=x,
        reference_y=reference_y,
        n_classes=n_classes,
        policy=policy,
        secret=key.derive(f"{THEFT_LABEL}:deployment"),
        watermark=wm,
        labels=labels,
        store=store,
        center=center,
        clock=clock,
        predict=predict,
    )


__all__ = [
    "THEFT_LABEL",
    "Answer",
    "DefendedModel",
    "Flag",
    "ReferenceScorer",
    "TheftDefence",
    "TheftPolicy",
    "build_defence",
    "derive",
    "projection_scale",
]
