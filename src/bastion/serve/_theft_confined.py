"""A consumer's narrow steps confined to a few features (issue 20, round 12).

The step test (:mod:`bastion.serve._theft_steps`) calls a narrow step — one on 1-3 features — informative if
it moves the answer more than keyed placements of its values on random features do. A clinic that re-sends a
patient's last record with one or two of the same few lab fields re-measured makes narrow steps on exactly
those fields, record after record; where the fields matter to the model (they are monitored because they
do), its steps move the answer more than random placements, and the small-steps test flagged it
(breast_cancer, 1-2 of 3 fixed fields re-measured, round 11: 5 of 20 streams at 0.3 x the field's deviation,
3 of 4 where the fields are the model's most important ones, 10 of 10 at 0.5 x, walking off its re-sends).

Steps confined to a small, stable set of features across a consumer's whole history carry little about the
model: a copy learns only those few directions. Measured (fix20z, breast_cancer, the bench's copy recipe,
fidelity on the 426 training rows, 1 row = 0.23 pp): natural seeds, then 1-3-feature probes on a fixed set of
k of the surrogate's top-gradient features up to the small-steps radius, answered without any defence, 2,000
rows in all, against a copy from the seeds alone: 20 seeds +0.5 pp (k = 3, 5, 7; 2 draws each); 10 seeds
+0.9, +0.9, +1.2 pp on average over 4 draws (k = 3, 5, 7; -0.5 to +2.8), where directionless noise on every
feature around the same seeds (re-sends, answered already) gains +1.6 (+0.2 to +3.1). So a narrow step
whose support lies within a consumer's dominant features is no evidence, whatever rule would count it:

* the consumer's narrow steps (each distinct step once) are tallied per feature over its whole history (the
  support: entries of at least 1 % of the largest);
* its dominant features are the ``top`` most touched (keyed: 5-7, at most a quarter of the features), once it
  has made at least ``least`` narrow steps (keyed: 8-11) and those features hold at least ``share`` of all
  its touches (keyed: 0.85-0.95);
* a narrow step then counts for nothing if its whole support is among them (it is still tallied).

A walk that leaves the band through such a confined re-send along the same features is no small step either
(:meth:`~bastion.serve._theft_steps.StepTest.off_narrow`).

On pixels (round 13, fix20ab) the discount lifts the company rules only (:mod:`bastion.serve._theft_company`:
the fan-in, which calls a feature stepped off anchor after anchor a feature-major prober, and the line rule):
a camera whose same 3 (or 5) flaky pixels are re-measured, image after image (1-2 of them, + N(0, 0.3-0.5 x
the pixel's spread) on the last image sent) made exactly those steps (digits, round 12: 5/5 and 3/5 streams
flagged by small steps at 280-1,880 rows) -> 0/40 (2 keys x 5 streams x 0.3 / 0.5 sd, 3 and 5 pixels). Its
own pull (the narrow null) and the fan-out off one anchor still count there, and a step that takes a pixel
out of its natural range (the reference's, widened by a keyed 2-3 x its spread; an image already outside it
no farther out) is no re-measurement: a feature-major sweep lighting border pixels no image lights is judged
as before. A thief confined to the model's few most important pixels is still flagged, later than before
(probes on 3-7 top pixels off 40-100 natural anchors, <= 15 per anchor: 180-1,940 rows, 10 of 10 runs;
round 12: 120-400).
What such probes gain: a copy from the first 300 rows, answered without any defence, against a copy from the
anchors alone, -9.8 to +0.4 pp (+2.0 at most from 2,000 rows), so the discount is no hole on digits.

Round 16 (``wide``, pixels only): a camera's defect patch is wider than 5-7 pixels. One with a 10-pixel
patch in the ink area, sending each scene 3 times with 1-3 of the patch's pixels re-measured (+ N(0, 0.4 x
spread)), touched all ten about equally, so its top 5-7 never held ``share`` and the fan-in flagged it (cold
review attack20i, digits: 15 of 15 streams at 200-340 rows). On pixels the dominant features are now up to a
quarter of them less a keyed 0-3 (13-16 on digits), once the consumer has made at least twice that many
narrow steps (+ keyed 0-3): patches of 10, 12, 14 and 16 pixels, re-measured or clean-first, 0 of 10 streams
each (2 keys x 5; 12-pixel patch with 10-15 copies per scene: 0 of 10; 9-pixel: 1 of 10). Its counter, probes
on 1-3 of the model's 16 most important pixels off natural anchors (no per-pixel cap), is flagged later than
before (digits, 4 keys: 400-1,740 rows; round 13's discount: 320-440) but gains little: a copy of the whole
stream answered without any defence beats one of its anchors alone by +0.7 to +1.2 pp at 2,000 rows and
+0.1 to +0.4 pp at 300 (3 draws), and every copy made before the flag (0.83-0.92) stays below that of the
anchors alone (0.96-0.97).

A prober cannot use the discount to learn more than those few directions: steps off them are judged as
before, and once a consumer's steps spread over more features its dominant features stop holding ``share``
of its touches (feature-major probes of one feature after another lose the discount as the sixth to eighth
feature comes in). The state is per worker, in memory, for the last ``_CONSUMERS`` consumers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, OrderedDict

import numpy as np

_TOP = 5  # + keyed 0-2: the dominant features (at most a quarter of the features; pixels: see ``wide``)
_LEAST = 8  # + keyed 0-3: narrow steps before the consumer's dominant features mean anything
_SHARE = 0.85  # + keyed [0, 0.1): the dominant features' share of the consumer's touches
_WIDE_LEAST = 2  # x top (+ keyed 0-3): pixels' narrow steps before their dominant ones mean anything
_SUPPORT = 0.01  # a step's support: its entries of at least this x its largest
_CONSUMERS = 4096


class Confined:
    """Per consumer, the features its narrow steps touched (see the module docstring)."""

    def __init__(self, secret: bytes, n_features: int, *, wide: bool = False) -> None:
        keyed = hmac.new(secret, b"confined", hashlib.sha256).digest()
        quarter = max(int(n_features) // 4, 0)
        self.top = min(_TOP + keyed[0] % 3, quarter)
        self.least = _LEAST + keyed[1] % 4
        if wide:  # pixels (round 16): a defect patch of up to a quarter of the sensor, less a keyed 0-3
            self.top = max(self.top, quarter - keyed[0] % 4)
            self.least = max(self.least, _WIDE_LEAST * self.top + keyed[1] % 4)
        self.share = _SHARE + 0.1 * keyed[2] / 256.0
        self._tally: OrderedDict[bytes, tuple[Counter[int], list[int]]] = OrderedDict()

    def confined(self, who: bytes, step: np.ndarray) -> bool:
        """Is consumer ``who``'s narrow ``step`` within its dominant features (judged on its earlier steps
        only)? The step then joins the tally. Call once per distinct step."""
        support = _support(step)
        out = self._within(who, support)
        if support:
            got = self._tally.pop(who) if who in self._tally else (Counter(), [0])
            self._tally[who] = got
            tally, n = got
            while len(self._tally) > _CONSUMERS:
                self._tally.popitem(last=False)
            tally.update(support)
            n[0] += 1
        return out

    def within(self, who: bytes, step: np.ndarray, least: int | None = None) -> bool:
        """Is ``step`` within consumer ``who``'s dominant features (nothing tallied)? ``least``: the narrow
        steps it needs first (default ``self.least``; the newcomers' pool asks with ``top``)."""
        return self._within(who, _support(step), least)

    def _within(self, who: bytes, support: list[int], least: int | None = None) -> bool:
        got = self._tally.get(who)
        least = self.least if least is None else least
        if got is None or not support or len(support) > self.top or got[1][0] < least:
            return False
        tally = got[0]
        dominant = tally.most_common(self.top)
        held = sum(c for _, c in dominant)
        return held >= self.share * sum(tally.values()) and set(support) <= {f for f, _ in dominant}


def _support(step: np.ndarray) -> list[int]:
    """A step's features: its entries of at least ``_SUPPORT`` x its largest (none for a zero step)."""
    a = np.abs(np.asarray(step, dtype=np.float64))
    peak = float(a.max()) if len(a) else 0.0
    return [int(i) for i in np.flatnonzero(a >= _SUPPORT * peak)] if peak > 0.0 else []
