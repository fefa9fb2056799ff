"""A consumer's narrow steps judged by their company across anchors and along one line (issue 20, round 11).

The step test (:mod:`bastion.serve._theft_steps`) calls a narrow step — one on 1-3 features — informative
if it moves the answer more than its own null does (weak: a surrogate's top-gradient pixel is the served
model's only a little more often than chance) or if it is one of more than ``fanout`` (16-19) narrow steps off
one anchor. Two probing patterns pass both:

* **feature-major probes**: one feature (or a few) stepped off many anchors in turn, ``x_1 + d e_i``,
  ``x_2 + d e_i``, ... — the finite difference of one feature, measured across the data; each anchor sees one
  or two narrow steps. :class:`Company` keeps, per consumer, which features its last ``window`` narrow steps
  touched (keyed: as many as features, 16-64, + 0-25 %: 64-79 on digits, 30-36 on breast_cancer; a step's
  features are its up to three largest entries of at least half its largest, each counted once per
  anchor), and a narrow step on a feature that ``fan_in`` (keyed, 9-12) *other* anchors'
  narrow steps in that window touched is informative. A client that re-sends inputs with a glitch on 1-3
  random features touches each feature a few times per window (digits, 2,000 rows of 3x glitched re-sends,
  three streams: at most 6 anchors per feature in a window of 64 narrow steps). Probes of a surrogate's
  top-gradient features off many anchors, a few per anchor (attack20d "narrow": 7 per anchor) crowd the
  features where the model looks, and pass this cut now and then: enough, with the narrow null, to flag.
* **line probes**: a narrow step off an anchor that is a multiple ``c`` of an earlier narrow step off it,
  entry by entry (within a keyed 1-2 % of its largest entry), of another length or the other way (``c``
  not within 10 % of 1): a Jacobian walk that steps its seeds again along the same pixel (each round's
  surrogate agrees on the top pixel), a line search or a central difference. Both steps need the same
  support (the entries at least 1 % of the largest; at most the 8 entries kept of a step). Two glitched
  copies of a glitched anchor share the anchor's glitch and so point alike (14-26 of ~1,400 narrow steps
  reach ``|cos| >= 0.99``, digits) but are no multiple of each other: each undoes the anchor's glitch by
  the same amount. A client that re-sends a clean input (or one whose glitch was clipped away) twice with a
  glitch on the same single pixel makes one (about 1 in 600 anchors of 1-3 pixel glitches).

Round 15 (fix20ad): the fan-in counted by anchors too. attack20d's ``narrow`` makes 7 probes off each anchor
on 1-3 of its 14-21 top-gradient pixels: a 64-79-step window holds only 9-11 of its anchors, so no pixel
reaches 9-12 *other* anchors there (flagged at 460-1,600 rows on digits). :class:`Company` also keeps the
consumer's last ``anchors`` (keyed, 12-14) anchors with narrow steps and the features each touched, and a
narrow step on a feature that at least half of the other anchors there touched (at least 4) is informative,
once those anchors touched at least ``wide`` (keyed, 8-11) features in all. Measured on digits (2,000 rows,
fix20ad): the attack's steps reach half in 20-40 % of cases (flagged at 260-300 rows, 8 of 8 keys); glitched
re-sends (each input 3x or 10-15x, 1-3 random pixels a copy) reach at most 7 of 11-13, under 1 % of their
steps; a camera's 3-5 flaky pixels stay under ``wide`` (those are for ``_theft_confined``, once it has seen
enough steps: before, the anchor count flagged one such stream at 100 rows).

Both are about the consumer's own narrow steps; what a benign client does that looks the same: a camera with
one flaky pixel that sends each input with and without it (one feature stepped off every anchor) is a
feature-major prober to this test, and so is a clinic that re-sends each patient's record with one or two of
the same few lab fields re-measured (attack20e: breast_cancer, 1-2 of 3 fixed fields re-measured at 0.2 sd,
4-6 of 10 streams flagged): the fan-in rule applies to intensity-like rows only (``fan_in``; the gateway
passes ``TheftPolicy.sensor_rows``, default: reference rows >= 0), and tabular feature-major probes are left
to the other tests (breast_cancer: first flag 360-400 rows, not met). Since round 13 a narrow step confined
to the consumer's few dominant pixels, inside their natural range (``_theft_confined``), is exempt from both
rules: a camera re-measuring the same few flaky pixels image after image is not flagged. The state is per
worker, in memory (not in the shared store), for the last ``_CONSUMERS`` consumers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, OrderedDict, deque

import numpy as np

_WINDOW = 64  # + keyed 0-25 %: the consumer's last narrow steps whose features are counted (at most)
_MIN_WINDOW = 16  # ... and at least (fewer features: as many steps as features)
_FAN_IN = 9  # + keyed 0-3: other anchors' narrow steps on one feature in the window before it counts
_TOP = 3  # a step's features: its up to _TOP largest entries of at least _REL x its largest
_REL = 0.5
_LINE = 0.01  # + keyed [0, 0.01): a line probe's entries off c x the earlier step's, x its largest entry
_SAME = 0.1  # ... with |c - 1| at least this (a step of about the same length: a near-duplicate row)
_SUPPORT = 0.01  # a step's support: its entries of at least this x its largest
_CONSUMERS = 4096  # consumers whose window is kept (least recently used dropped)
_SPREAD = 12  # + keyed 0-2: round 15, the consumer's last anchors with narrow steps, features counted
_SPREAD_LEAST = 4  # ... a feature touched off half the other anchors there, and at least this many
_WIDE = 8  # + keyed 0-3: ... and only once those anchors' narrow steps touched this many features in all


class _Window:
    __slots__ = ("count", "pairs", "recent", "spread", "steps")

    def __init__(self) -> None:
        self.steps: deque[tuple[bytes, tuple[int, ...]]] = deque()  # (anchor, features new to it)
        self.count: Counter[int] = Counter()  # feature -> anchors in the window whose steps touched it
        self.pairs: Counter[tuple[bytes, int]] = Counter()  # (anchor, feature) in the window
        # round 15: the same by anchors, not steps: the last ``Company.anchors`` anchors (in the order of
        # their first narrow step) with the features their narrow steps touched, and per feature how many
        self.recent: OrderedDict[bytes, set[int]] = OrderedDict()
        self.spread: Counter[int] = Counter()


class Company:
    """Fan-in across anchors per feature, and line probes off one anchor (see the module docstring)."""

    def __init__(self, secret: bytes, sketch: int, n_features: int = _WINDOW, *, fan_in: bool = True) -> None:
        # the fan-in rule only where the features are intensity-like (pixels): a tabular client re-measures
        # the same few fields of record after record (a clinic's follow-up visits), which is what a
        # feature-major prober does (attack20e: breast_cancer follow-ups 4-6/10 streams flagged with it, 0/10
        # without); the line rule holds for both
        self.use_fan_in = bool(fan_in)
        keyed = hmac.new(secret, b"company", hashlib.sha256).digest()
        # as many narrow steps as features (at least _MIN_WINDOW, at most _WINDOW), + keyed 0-25 %: a glitch
        # on random features touches each about as often, whatever the number of features
        base = min(max(int(n_features), _MIN_WINDOW), _WINDOW)
        self.window = base + keyed[0] % (base // 4)
        self.fan_in = _FAN_IN + keyed[1] % 4
        self.tol = _LINE + 0.01 * keyed[2] / 256.0
        # round 15: a feature touched by the narrow steps off at least half of the other anchors among the
        # consumer's last 12-14 (keyed) anchors with narrow steps (and at least _SPREAD_LEAST of them)
        self.anchors = _SPREAD + keyed[3] % 3
        # ... where they touched at least 8-11 (keyed) features in all: a camera whose same few flaky pixels
        # are re-measured image after image touches 3-5 (those are _theft_confined's, once it has seen enough)
        self.wide = _WIDE + keyed[4] % 4
        self.sketch = int(sketch)
        self._windows: OrderedDict[bytes, _Window] = OrderedDict()

    def features(self, step: np.ndarray) -> tuple[int, ...]:
        """The features a narrow step is counted on: its up to ``_TOP`` largest entries of at least ``_REL``
        times its largest (none for a zero step)."""
        a = np.abs(step)
        top = np.argsort(-a, kind="stable")[:_TOP]
        if not len(top) or a[top[0]] <= 0.0:
            return ()
        return tuple(int(i) for i in top if a[i] >= _REL * a[top[0]])

    def crowded(self, who: bytes, anchor: bytes, step: np.ndarray) -> bool:
        """Record consumer ``who``'s narrow ``step`` off ``anchor`` (a digest) and say whether one of its
        features was touched by the narrow steps off at least ``fan_in`` other anchors among the consumer's
        last ``window`` narrow steps. Call once per distinct step. Always False with ``fan_in=False``."""
        if not self.use_fan_in:
            return False
        w = self._windows.pop(who, None) or _Window()
        self._windows[who] = w
        while len(self._windows) > _CONSUMERS:
            self._windows.popitem(last=False)
        feats = self.features(step)
        others = max((w.count[f] - (w.pairs[(anchor, f)] > 0) for f in feats), default=0)
        spread, peers = self._spread(w, anchor, feats)
        new = tuple(f for f in feats if not w.pairs[(anchor, f)])
        w.steps.append((anchor, new))
        for f in new:
            w.count[f] += 1
            w.pairs[(anchor, f)] += 1
        while len(w.steps) > self.window:
            old, fs = w.steps.popleft()
            for f in fs:
                w.count[f] -= 1
                w.pairs[(old, f)] -= 1
                if w.pairs[(old, f)] <= 0:
                    del w.pairs[(old, f)]
                if w.count[f] <= 0:
                    del w.count[f]
        wide = len(w.spread) >= self.wide
        return others >= self.fan_in or (wide and spread >= max(_SPREAD_LEAST, (peers + 1) // 2))

    def _spread(self, w: _Window, anchor: bytes, feats: tuple[int, ...]) -> tuple[int, int]:
        """The most other anchors among the consumer's last ``anchors`` (with narrow steps) whose narrow
        steps touched one of ``feats``, and how many other anchors there are; then ``feats`` join
        ``anchor``'s features."""
        mine = w.recent.get(anchor)
        if mine is None:
            mine = w.recent[anchor] = set()
            while len(w.recent) > self.anchors:
                _, gone = w.recent.popitem(last=False)
                for f in gone:
                    w.spread[f] -= 1
                    if w.spread[f] <= 0:
                        del w.spread[f]
        out = max((w.spread[f] - (f in mine) for f in feats), default=0)
        for f in feats:
            if f not in mine:
                mine.add(f)
                w.spread[f] += 1
        return out, len(w.recent) - 1

    def line(self, step: np.ndarray, earlier: list[tuple[np.ndarray, np.ndarray, float]]) -> bool:
        """Is ``step`` a line probe: on the same support as one of the ``earlier`` narrow steps off its anchor
        (their sketches: indices, values, squared norm) and a multiple ``c`` of it, ``|c - 1| >= _SAME``,
        entry by entry within ``tol`` x its largest entry? Only sparse steps (support at most the sketch's
        size) take part."""
        a = np.abs(step)
        peak = float(a.max()) if len(a) else 0.0
        if peak <= 0.0:
            return False
        support = np.flatnonzero(a >= _SUPPORT * peak)
        if len(support) > self.sketch:
            return False
        mine = frozenset(int(i) for i in support)
        for idx, vals, e_sq in earlier:
            av = np.abs(vals)
            top = float(av.max()) if len(av) else 0.0
            if top <= 0.0 or (len(av) >= self.sketch and av.min() >= _SUPPORT * top):
                continue  # (a zero step, or one wider than its sketch: its support is not known)
            if frozenset(int(i) for i in idx[av >= _SUPPORT * top]) != mine:
                continue
            c = float(step[idx] @ vals) / e_sq
            if abs(c - 1.0) >= _SAME and float(np.abs(step[idx] - c * vals).max()) <= self.tol * peak:
                return True
        return False
