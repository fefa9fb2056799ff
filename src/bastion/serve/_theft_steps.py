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

The flips are drawn from HMAC-SHA256(secret, anchor bytes || row bytes): two workers agree, and a client
cannot predict them. Cost: ``k + 2`` predictions per row in the band (none for other rows), one call per
row; verdicts are cached per (anchor, row) pair, so the identity, its address and the newcomers' pool do not
pay twice. Without ``predict`` every row in the band counts, as before round 9.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

_CACHE = 4096  # (anchor, row) verdicts kept
_CALIBRATION = 500  # reference rows that calibrate the threshold
_MIN_RATIO = 1.5  # the threshold never below this x the mean change along random steps


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
    ) -> None:
        self.predict = predict
        self.secret = secret
        self.k = int(k)
        self.fpr = float(fpr)
        self._reference = reference
        self._band = band
        self._ratio: float | None = None
        self._memo: OrderedDict[bytes, bool] = OrderedDict()

    @property
    def ratio(self) -> float:
        """The threshold: the ``1 - fpr`` quantile of the ratio for directionless steps (random signs, each
        feature's size |N(0, 1)|, scaled to the middle of the band) from up to ``_CALIBRATION`` keyed
        reference rows. A noise step's ratio depends on the model (with two classes the change is one
        number, ~|N|/E|N|, heavier-tailed than with ten), so the threshold is measured, not fixed."""
        if self._ratio is None:
            rng = np.random.default_rng(
                int.from_bytes(hmac.new(self.secret, b"calibration", hashlib.sha256).digest(), "big")
            )
            ref = self._reference
            a = ref[rng.permutation(len(ref))[:_CALIBRATION]].astype(np.float64)
            step = rng.standard_normal(a.shape)
            step *= 0.5 * sum(self._band) / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-12)
            r = self._ratios(a + step, a)
            self._ratio = max(float(np.quantile(r, 1.0 - self.fpr)), _MIN_RATIO)
        return self._ratio

    def _flips(self, tag: bytes, width: int) -> np.ndarray:
        seed = hmac.new(self.secret, tag, hashlib.sha256).digest()
        rng = np.random.default_rng(int.from_bytes(seed, "big"))
        return rng.integers(0, 2, size=(self.k, width)).astype(np.float64) * 2.0 - 1.0

    def _ratios(self, rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """Each step's change of the answer over the mean change along its ``k`` keyed sign flips."""
        a = np.asarray(anchors, dtype=np.float32)
        x = np.asarray(rows, dtype=np.float32)
        m, w = x.shape
        flips = np.stack([self._flips(ai.tobytes() + xi.tobytes(), w) for ai, xi in zip(a, x, strict=True)])
        a64 = a.astype(np.float64)
        nulls = a64[:, None, :] + flips * (x.astype(np.float64) - a64)[:, None, :]
        batch = np.concatenate([a64, x.astype(np.float64), nulls.reshape(m * self.k, w)])
        p = np.asarray(self.predict(batch.astype(np.float32)), dtype=np.float64)
        lp = np.log(np.clip(p, 1e-30, None))
        lp -= lp.mean(axis=1, keepdims=True)  # centred log-probabilities: the logits up to a constant
        base, moved, null = lp[:m], lp[m : 2 * m], lp[2 * m :].reshape(m, self.k, -1)
        change = np.linalg.norm(moved - base, axis=1)
        typical = np.linalg.norm(null - base[:, None, :], axis=2).mean(axis=1)
        return np.asarray(change / np.maximum(typical, 1e-9))

    def informative(self, rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """For each row and its anchor (both ``(m, features)``): does the step move the answer at least
        ``ratio`` times as much as its keyed random-sign steps do on average?"""
        rows = np.asarray(rows, dtype=np.float32)
        anchors = np.asarray(anchors, dtype=np.float32)
        out = np.zeros(len(rows), dtype=bool)
        keys = [
            hashlib.blake2b(a.tobytes() + r.tobytes(), digest_size=16).digest()
            for a, r in zip(anchors, rows, strict=True)
        ]
        todo = [i for i, key in enumerate(keys) if key not in self._memo]
        for i, key in enumerate(keys):
            if key in self._memo:
                out[i] = self._memo[key]
        if todo:
            verdict = self._ratios(rows[todo], anchors[todo]) >= self.ratio
            for j, i in enumerate(todo):
                out[i] = self._memo[keys[i]] = bool(verdict[j])
            while len(self._memo) > _CACHE:
                self._memo.popitem(last=False)
        return out


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
    )
