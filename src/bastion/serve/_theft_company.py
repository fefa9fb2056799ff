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


class _Window:
    __slots__ = ("count", "pairs", "steps")

    def __init__(self) -> None:
        self.steps: deque[tuple[bytes, tuple[int, ...]]] = deque()  # (anchor, features new to it)
        self.count: Counter[int] = Counter()  # feature -> anchors in the window whose steps touched it
        self.pairs: Counter[tuple[bytes, int]] = Counter()  # (anchor, feature) in the window


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
        return others >= self.fan_in

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
