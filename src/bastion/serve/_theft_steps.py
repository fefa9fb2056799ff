"""Informative small steps (issue 20, round 9): a step only counts as Jacobian-walk evidence if it moves the
model's answer more than a random step with the same per-feature sizes would.

The small-steps test (:mod:`bastion.serve._theft_judge`) counts a consumer's new rows that sit within the
small-steps radius of one of its earlier counted rows but beyond the re-send radius. A benign client that
re-sends an input with a little more sensor noise, or at another bit depth, lands in that band too, so a
count alone flags it. What tells the two apart is the direction: Jacobian-based augmentation (Papernot et
al. 2017) steps along the sign of a surrogate's gradient, which is correlated with the served model's, so
the answer moves by about ``cos · |grad| · |step|``; sensor noise and re-quantisation error point nowhere in
particular and move it by about ``|grad| · |step| / sqrt(features)``.

:class:`StepTest` measures that with the served model itself (``predict``: rows -> probabilities, the same
function the gateway answers with): for a row in the band and its nearest counted row (the anchor), the
change of the answer from the anchor to the row, against the mean change from the anchor along ``k`` keyed
sign flips of the same step (each feature's step kept in size, its sign flipped at random: the same length
and the same support — a re-quantisation error that touches only some features keeps that structure — but
no direction). The answer is compared as centred log-probabilities, which are the logits up to a constant,
so saturated probabilities still show a change. For a step with no direction the ratio is a draw of the null
itself (about 1); for a gradient-sign step it grows with ``cos · sqrt(features)``. The threshold is measured
per deployment (:attr:`StepTest.ratio`: the ``1 - step_fpr`` quantile of the ratio for random steps from
reference rows, at least 1.5: with two classes the change is one number and its null is heavier-tailed).

What the judge does with the verdict (``_TheftJudge._nearest``): an informative step is a counted row and a
small step; a directionless one is a re-send (not a new row for the shift, tail and PRADA tests, and it does
not join the history, so a chain of them cannot walk away from its counted anchor), but it still counts in
the small-steps share's denominator — a camera that sends one scene many times makes many tests, each with a
small chance of a false "informative". An attacker whose steps are all directionless is answered as a client
that re-sends its natural seeds with noise: its copy is measured in ``docs/benchmarks.md`` (round 9).

Narrow steps (round 10, attack20c F1). A step on one feature has two sign flips, itself and its mirror, so
its ratio was 1 by construction: a single-pixel Jacobian walk and depth-1 coordinate probes ``x + d e_i``
(finite differences) passed as re-sends. A step whose participation ratio ``(sum s^2)^2 / sum s^4`` (its
effective number of features) is below a keyed cut-off in [3, 4) is narrow, and is informative if

* it moves the answer ``narrow_ratio`` times as much as ``_NARROW_K * k`` keyed placements of its values on
  random features with random signs (its own null, calibrated the same way on 1-3 feature steps) — weak on
  its own: a surrogate's top-gradient pixel is the served model's only ~10 % more often than chance;
* or by its company, per consumer (``who``) and anchor: beyond the first ``fanout`` (keyed, 16-19) narrow
  steps off one anchor (a fan-out of probes: each probe is a random feature, a null draw by itself). (A
  "chain" rule — a narrow step nearer to an earlier one off its anchor than to the anchor — caught a
  single-pixel walk at 240 rows instead of 320, but flagged clients that re-send each input 2-3 times with
  an independent 1-3-pixel glitch and never the clean input, 20/20 streams, since two glitched copies share
  the first copy's glitch: dropped, round-10 cold review.)

Round 11 (:mod:`bastion.serve._theft_company`): a narrow step is informative by its company across anchors
too — on a feature that the consumer's narrow steps off a keyed 9-12 other anchors touched among its last
narrow steps (as many as features, 16-64, + a keyed 0-25 %: feature-major probes, one feature stepped off
many anchors in turn) — or along one line: a multiple, entry by entry, of an earlier narrow step off its
anchor, of another length or the other way (a Jacobian walk stepping a seed again along the same pixel; a
line search). ``company = None`` turns both off.

Round 12 (:mod:`bastion.serve._theft_confined`): on tabular rows a narrow step whose features all lie among
the few that dominate the consumer's narrow steps over its whole history is no evidence by any of these rules
(a clinic re-measuring the same lab fields record after record); nor is a row a small step off such a
re-send along those features (:meth:`StepTest.off_narrow`). Round 13: on pixels (where the fan-in is on)
such a step is no evidence by its company — the fan-in and the line rules (a camera whose same few flaky
pixels are re-measured image after image) — while its own pull (the narrow null) and the fan-out off one
anchor still count, and only while its pixels stay within their natural range (a sweep lighting border pixels
that no image lights is judged as before). Round 16: on pixels the dominant features may be up to a quarter
of them, less a keyed 0-3 (a camera's defect patch of 10-16 pixels). ``confined = None`` turns it off.

Round 18: the newcomers' pool passes ``owner`` (the sender, for a step off one of its own rows): on pixels
such a step within the owner's dominant pixels is no fan-in evidence for the pool (:mod:`bastion.serve.
_theft_pool`); the line rule, the fan-out and the narrow null still count.

And a row beyond the band of every counted row that is a small step off one of the consumer's narrow
re-sends is as near as that re-send (:meth:`StepTest.off_narrow`, asked by the judge): a walk whose second
step leaves its anchor's band is not a new row far from the others.

A benign client that re-sends each input three times with a glitch on 1-3 features makes two narrow steps
per anchor (the fan-out is 16-19 rather than 8-11: natural inputs drawn again and again, each time re-sent
3x with a new glitch, reached 8-11 copies off one counted copy in 2,000 rows, round-10 cold review); one that
re-sends the same input with a new glitch more than ``fanout`` times is counted as probing it. The company
is kept in memory, per worker (not in the shared store), for the last ``_ANCHORS`` (consumer, anchor) pairs.

The flips are drawn from HMAC-SHA256(secret, anchor bytes || row bytes): two workers agree, and a client
cannot predict them. Cost: ``k + 2`` predictions per row in the band (``2k + 2`` for a narrow one; none
for other rows), one call per row; verdicts are cached per (anchor, row) pair, so the identity, its address
and the newcomers' pool do not pay twice. Without ``predict`` every row in the band counts, as before
round 9.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from bastion.serve._theft_company import Company
from bastion.serve._theft_confined import Confined
from bastion.serve.responses import keyed_generator

_CACHE = 4096  # (anchor, row) verdicts kept
_CALIBRATION = 500  # reference rows that calibrate the threshold
_MIN_RATIO = 1.5  # the threshold never below this x the mean change along random steps
# narrow steps (round 10): a step whose participation ratio (sum s^2)^2 / sum s^4 — its effective number of
# features — is below a keyed cut-off in [_NARROW, _NARROW + 1) is tested against keyed placements of its
# values on random features (a sign flip of a 1-3 feature step is itself or its mirror: no null)
_NARROW = 3.0
_NARROW_K = 2  # x k placements for a narrow step (its null is noisier: a random feature's pull varies more)
# the fan-out: a consumer's narrow steps off one anchor beyond the first _FANOUT + keyed 0-3 are informative
# (coordinate probes x + d e_i: each a random feature, a null draw by itself; their breadth is the evidence)
_FANOUT = 16
_ANCHORS = 4096  # (consumer, anchor) pairs whose narrow steps are kept (least recently used dropped)
_SKETCH = 8  # entries kept of each narrow step (its largest: a narrow step has few)


class StepTest:
    """Which small steps are informative (see the module docstring). ``reference`` rows and the band
    ``(inner, outer)`` calibrate the threshold on first use."""

    def __init__(
        self,
        *,
        predict: Callable[[np.ndarray], Any],
        secret: bytes,
        k: int,
        fpr: float,
        reference: np.ndarray,
        band: tuple[float, float],
        sensor: bool | None = None,
        confined_after: int = 0,
    ) -> None:
        self.predict = predict
        # the confinement discount needs this many counted rows of the consumer first (the policy's min_rows:
        # a stream is judged from there): a handful of synthetic anchors followed by confined steps off them
        # would otherwise stay below min_rows, never judged (attack20f, round 12)
        self.confined_after = int(confined_after)
        self.secret = secret
        self.k = int(k)
        self.fpr = float(fpr)
        self._reference = reference
        self._band = band
        # the data's range (all features together): null steps, like a client's rows, stay inside it — a
        # glitch clipped at 0 only adds ink, and an unclipped null that also subtracts it moves less
        self._lo, self._hi = float(np.min(reference)), float(np.max(reference))
        self._ratio: float | None = None
        self._narrow_ratio: float | None = None
        self._memo: OrderedDict[bytes, tuple[bool, bool]] = OrderedDict()  # (moved, narrow)
        # per (consumer, anchor): its first narrow steps (up to fanout + 1 of them): sketch and verdict
        self._fanout: OrderedDict[bytes, dict[bytes, tuple[np.ndarray, np.ndarray, float, bool, bool]]] = (
            OrderedDict()
        )
        keyed = hmac.new(secret, b"narrow", hashlib.sha256).digest()
        # the participation ratio below which a step is narrow (none where the data has few features: there a
        # step's sign flips are nulls enough)
        self.narrow = min(_NARROW + keyed[0] / 256.0, reference.shape[1] / 4.0)
        self.fanout = _FANOUT + keyed[1] % 4  # narrow steps off one anchor before each next one counts
        # round 11: fan-in across anchors per feature, and line probes off one anchor (_theft_company)
        # (the fan-in for intensity-like rows only; None: when the reference rows are >= 0, as for mixtures)
        sensor = bool(np.min(reference) >= 0.0) if sensor is None else bool(sensor)
        self.company: Company | None = Company(secret, _SKETCH, reference.shape[1], fan_in=sensor)
        # round 12: narrow steps within a consumer's few dominant features are no evidence (_theft_confined):
        # a clinic's follow-ups re-measure the same few fields. Round 13: on pixels too (a camera's few flaky
        # pixels re-measured, image after image), where the discount lifts the company rules only (fan-in,
        # line); the narrow null and the fan-out off one anchor still count there. Round 16: on pixels the
        # dominant features may be a defect patch of up to a quarter of them (``wide``)
        self.confined: Confined | None = Confined(secret, reference.shape[1], wide=sensor)
        self._company_only = sensor  # (pixels: the discount lifts only the company rules)
        # ... and only for a step whose pixels stay within their natural range (each pixel's reference range,
        # widened by a keyed 2-3 x its spread): a re-measured pixel keeps its natural values, a probe that
        # lights a border pixel no image ever lights (a feature-major sweep) does not
        ref = np.asarray(reference, dtype=np.float64)
        slack = (2.0 + keyed[2] / 256.0) * ref.std(axis=0)
        self._natural = (ref.min(axis=0) - slack, ref.max(axis=0) + slack)

    @property
    def ratio(self) -> float:
        """The threshold: the ``1 - fpr`` quantile of the ratio for directionless steps (random signs, each
        feature's size |N(0, 1)|, scaled to the middle of the band) from up to ``_CALIBRATION`` keyed
        reference rows. A noise step's ratio depends on the model (with two classes the change is one
        number, ~|N|/E|N|, heavier-tailed than with ten), so the threshold is measured, not fixed."""
        if self._ratio is None:
            self._ratio, self._narrow_ratio = self._calibrate()
        return self._ratio

    @property
    def narrow_ratio(self) -> float:
        """The threshold for narrow steps: the same quantile for steps on 1-3 keyed random features (sizes
        |N(0, 1)|, the middle of the band) against their own null, random placements of their values."""
        if self._narrow_ratio is None:
            self._ratio, self._narrow_ratio = self._calibrate()
        return self._narrow_ratio

    def _calibrate(self) -> tuple[float, float]:
        rng = keyed_generator(self.secret, "calibration")
        ref = self._reference
        a = ref[rng.permutation(len(ref))[:_CALIBRATION]].astype(np.float64)
        step = rng.standard_normal(a.shape)
        step *= 0.5 * sum(self._band) / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-12)
        wide, _ = self._ratios(a + step, a, narrow=False)  # (unclipped: the wide threshold as before)
        # (drawn after the wide steps: the wide threshold is the same as before round 10)
        narrow = np.zeros_like(a)
        support = rng.integers(1, min(3, a.shape[1]) + 1, len(a))
        for i, m in enumerate(support):
            narrow[i, rng.choice(a.shape[1], m, replace=False)] = rng.standard_normal(m)
        narrow *= 0.5 * sum(self._band) / np.maximum(np.linalg.norm(narrow, axis=1, keepdims=True), 1e-12)
        r, _ = self._ratios(np.clip(a + narrow, self._lo, self._hi), a)
        return (
            max(float(np.quantile(wide, 1.0 - self.fpr)), _MIN_RATIO),
            max(float(np.quantile(r, 1.0 - self.fpr)), _MIN_RATIO),
        )

    def _nulls(self, tag: bytes, step: np.ndarray, narrow: bool) -> np.ndarray:
        """The keyed null steps of one step: ``k`` sign flips of it, or (narrow) ``_NARROW_K * k`` placements
        of its values on random features with random signs."""
        seed = hmac.new(self.secret, tag, hashlib.sha256).digest()
        rng = np.random.default_rng(int.from_bytes(seed, "big"))
        w = len(step)
        flips = rng.integers(0, 2, size=(self.k, w)).astype(np.float64) * 2.0 - 1.0
        if not narrow:
            return flips * step
        n = _NARROW_K * self.k
        signs = rng.integers(0, 2, size=(n, w)).astype(np.float64) * 2.0 - 1.0
        return np.stack([step[rng.permutation(w)] for _ in range(n)]) * signs

    def _ratios(
        self, rows: np.ndarray, anchors: np.ndarray, narrow: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each step's change of the answer over the mean change along its keyed null steps, and which steps
        are narrow (tested against placements of their values on random features)."""
        a = np.asarray(anchors, dtype=np.float32)
        x = np.asarray(rows, dtype=np.float32)
        m = len(x)
        a64 = a.astype(np.float64)
        step = x.astype(np.float64) - a64
        sq = step**2
        pr = sq.sum(axis=1) ** 2 / np.maximum((sq**2).sum(axis=1), 1e-300)
        thin = (pr < self.narrow) if narrow else np.zeros(m, dtype=bool)
        nulls = [
            self._nulls(ai.tobytes() + xi.tobytes(), si, bool(t))
            for ai, xi, si, t in zip(a, x, step, thin, strict=True)
        ]
        sizes = [len(n) for n in nulls]
        batch = np.concatenate(
            [
                a64,
                x.astype(np.float64),
                *(
                    np.clip(ai + n, self._lo, self._hi) if t else ai + n
                    for ai, n, t in zip(a64, nulls, thin, strict=True)
                ),
            ]
        )
        p = np.asarray(self.predict(batch.astype(np.float32)), dtype=np.float64)
        lp = np.log(np.clip(p, 1e-30, None))
        lp -= lp.mean(axis=1, keepdims=True)  # centred log-probabilities: the logits up to a constant
        base, moved = lp[:m], lp[m : 2 * m]
        change = np.linalg.norm(moved - base, axis=1)
        ends = np.cumsum([2 * m, *sizes])
        typical = np.array(
            [np.linalg.norm(lp[ends[i] : ends[i + 1]] - base[i], axis=1).mean() for i in range(m)]
        )
        return np.asarray(change / np.maximum(typical, 1e-9)), thin

    def informative(
        self,
        rows: np.ndarray,
        anchors: np.ndarray,
        who: bytes = b"",
        counted: int | None = None,
        owner: bytes | None = None,
    ) -> np.ndarray:
        """For each row and its anchor (both ``(m, features)``): does the step move the answer at least
        ``ratio`` times as much as its keyed null steps do on average (``narrow_ratio`` for a narrow step)?
        A narrow step is informative too once consumer ``who`` has sent ``fanout`` other narrow steps off
        the same anchor (each distinct step counted once per consumer and anchor). ``counted``: the consumer's
        counted rows so far (the confinement discount waits for ``confined_after`` of them; None: no wait)."""
        rows = np.asarray(rows, dtype=np.float32)
        anchors = np.asarray(anchors, dtype=np.float32)
        out = np.zeros(len(rows), dtype=bool)
        keys = [
            hashlib.blake2b(a.tobytes() + r.tobytes(), digest_size=16).digest()
            for a, r in zip(anchors, rows, strict=True)
        ]
        found = {key: self._memo[key] for key in keys if key in self._memo}
        todo = [i for i, key in enumerate(keys) if key not in found]
        if todo:
            ratios, thin = self._ratios(rows[todo], anchors[todo])
            limit = np.where(thin, self.narrow_ratio, self.ratio)
            for j, i in enumerate(todo):
                found[keys[i]] = self._memo[keys[i]] = (bool(ratios[j] >= limit[j]), bool(thin[j]))
            while len(self._memo) > _CACHE:
                self._memo.popitem(last=False)
        for i, key in enumerate(keys):
            moved, thin_i = found[key]
            walked, confined = (
                self._walked(who, anchors[i], rows[i], key, owner) if thin_i else (False, False)
            )
            confined = confined and (counted is None or counted >= self.confined_after)
            if self._company_only:  # pixels: a confined step's company is no evidence, its own pull is
                out[i] = moved or (walked and not confined)
            else:  # tabular rows: a confined step is no evidence by any rule
                out[i] = (moved or walked) and not confined  # (every narrow step counts in _walked)
        return out

    def off_narrow(self, who: bytes, row: np.ndarray, anchors: np.ndarray, sq: np.ndarray) -> float:
        """The least squared distance from ``row`` to one of consumer ``who``'s narrow steps off ``anchors``
        (``sq``: the row's squared distances to them), ``|row - a|^2 - 2 (row - a) . s + |s|^2`` with each
        step ``s`` from its sketch; inf if it has none. A walk whose steps leave the band of the anchor
        through a re-send is still a small step from that re-send."""
        best = np.inf
        for a, d2 in zip(anchors, sq, strict=True):
            seen = self._fanout.get(hashlib.blake2b(who + b"\0" + a.tobytes(), digest_size=16).digest())
            if seen:
                diff = row.astype(np.float64) - a.astype(np.float64)
                for idx, vals, e_sq, _, confined in seen.values():
                    if confined and self._confined_from(who, diff, idx, vals):
                        continue  # (a walk within the consumer's dominant features: no evidence)
                    best = min(best, float(d2) - 2.0 * float(diff[idx] @ vals) + e_sq)
        return max(best, 0.0)

    def _confined_from(self, who: bytes, diff: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> bool:
        """Is the step from a confined narrow re-send (``idx``, ``vals``: its sketch off the anchor) to a row
        (``diff`` off the anchor) within consumer ``who``'s dominant features too?"""
        rest = diff.copy()
        rest[idx] -= vals
        return self.confined is not None and self.confined.within(who, rest)

    def _walked(
        self, who: bytes, anchor: np.ndarray, row: np.ndarray, key: bytes, owner: bytes | None = None
    ) -> tuple[bool, bool]:
        """Is a narrow step of consumer ``who`` off ``anchor`` evidence by its company: beyond the first
        ``fanout`` narrow steps off that anchor (a fan-out of probes)? And is it confined to the consumer's
        dominant features (then no evidence at all, :mod:`bastion.serve._theft_confined`)? Each step is
        judged once per consumer and anchor; the earlier steps are kept as their ``_SKETCH`` largest entries
        (:meth:`off_narrow`)."""
        tag = hashlib.blake2b(who + b"\0" + anchor.tobytes(), digest_size=16).digest()
        seen = self._fanout.pop(tag, {})
        self._fanout[tag] = seen
        while len(self._fanout) > _ANCHORS:
            self._fanout.popitem(last=False)
        if key in seen:
            return seen[key][3], seen[key][4]
        step = row.astype(np.float64) - anchor.astype(np.float64)
        confined = self.confined is not None and self.confined.confined(who, step)
        fanned = len(seen) >= self.fanout
        # the newcomers' pool (``owner``: the sender, whose own row the anchor is): a step within the sender's
        # own dominant pixels is no fan-in evidence for the pool (round 18, _theft_pool)
        own = (
            owner is not None
            and self.confined is not None
            and self.confined.within(owner, step, least=self.confined.top)
        )
        if self._company_only and (confined or own):  # (pixels: the fan-out off one anchor counts, confined
            # or not; a step that takes a pixel out of its natural range is no re-measurement)
            support = np.flatnonzero(np.abs(step) >= 0.01 * float(np.abs(step).max()))
            # (an image already outside a pixel's range: no farther out than it is)
            lo = np.minimum(self._natural[0][support], anchor[support])
            hi = np.maximum(self._natural[1][support], anchor[support])
            natural = not fanned and bool(np.all((row[support] >= lo) & (row[support] <= hi)))
            confined, own = confined and natural, own and natural
        else:
            own = False  # (tabular rows: unchanged)
        if len(seen) > self.fanout:
            return True, confined
        verdict = fanned
        if self.company is not None:  # (every distinct narrow step joins the consumer's fan-in window)
            crowded = self.company.crowded(who, tag, step) and not own
            line = self.company.line(step, [(i, v, e) for i, v, e, *_ in seen.values()])
            verdict = verdict or crowded or line
        top = np.argsort(-np.abs(step))[:_SKETCH]
        seen[key] = (top.astype(np.int32), step[top], float(step @ step), verdict, confined)
        return verdict, confined


def step_test(defence: Any, predict: Callable[[np.ndarray], Any] | None) -> StepTest | None:
    """The step test of a :class:`~bastion.serve.theft.TheftDefence` (its policy, secret, reference rows and
    radii), or None without ``predict``."""
    if predict is None:
        return None
    from bastion.serve._theft_policy import derive

    pol = defence.policy
    return StepTest(
        predict=predict,
        secret=derive(defence._secret, "steps"),
        k=pol.step_k,
        fpr=pol.step_fpr,
        reference=np.concatenate(defence.scorer.refs).reshape(-1, defence.n_features),
        band=(defence._resend_tau, defence._near_tau),
        sensor=pol.sensor_rows,
        confined_after=pol.min_rows,
    )
