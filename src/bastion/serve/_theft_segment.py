"""Rows in the hull of a consumer's earlier rows that are no mixtures (:mod:`bastion.serve._theft_mix`, round
10).

Two honest clients put rows in the hull of their own earlier rows (the round-9 review, F3 and F4):

* **interpolated frames** — frame-rate up-conversion sends the midpoint of two neighbouring frames, after both
  (decode order: it lies on the segment from the frame just sent to the one before) or between them (display
  order: on the segment from the frame just sent to a later frame the consumer sent before, where a scene
  comes back). Either way the row lies on the segment from the consumer's *previous counted row* to one of its
  nearest earlier rows. It is ordinary when that previous row is itself no mixture (an anchor), so each
  non-mixture row buys at most one exempt row: a mixer that interleaves them gains at most 2x (and its other
  rows are still tested), while a chain of mixes each on the segment from the last one counts from its second;
* **re-scans at another gain** — the same input sent at gains ``g1``, ``g2`` and then ``g3`` between them lies
  on their segment. A row that is one of its nearest earlier rows at another gain (``x ~ clip(g·h)``, the gain
  fitted on the row's unclipped features, as the newcomers' pool's re-scans) says nothing new about the model.

Round 11 (the round-10 cold review's natmix): a mixer that sends each natural row followed by one mix of it
with a near earlier row had every mix on the segment from its previous row, an anchor, and digits natmix was
never flagged (copy 0.95). An interpolated frame's other neighbour was sent just before the previous row, a
mixer's partner anywhere in its history: an exact mix (ratio below ``loose`` x the threshold, keyed 0.3-0.4)
is a frame only with a partner among the last ``back`` rows (keyed 3-4), unless the row two before it is no
mixture either (a scene that comes back: the frame's neighbour was re-sent, a repeat that did not join the
history, and its counted copy is far back). natmix: flagged at 60-80 rows (3 keys); one mix after every two
natural rows still passes (1.5x rows; a walk-ordered pool mixed with its row two back, 2x, too).

Round 20 (the round-10 cold review's video with two interpolated frames per pair, open since): 3x frame-rate
up-conversion sends, in decode order, a new frame ``P`` and then the frames a third and two thirds of the way
back to the frame ``E`` before it (``E P f f``; the next pair's ``E`` is then 3 rows behind its ``P``). The
first frame was ordinary, the second (its previous row a mixture) was not: every such stream was flagged. Both
frames are ordinary now when they sit at the thirds (within ``_THIRDS_TOL``) of the segment from ``P`` (the
row before, or two before with the other frame between) to a row among the ``back + 2`` rows before it, and
the served model gives ``P``, ``E`` and the frames one top class (``classes``: a scene between cuts). The same
rows between two classes are what a mixup thief sends across a boundary (round 17; exempting them all moved
such a thief's first flag from 60-80 to 330-450 rows), so they stay mixtures; between two rows of one class
they cost the thief nothing over its natural rows alone (digits, measured in ``docs/benchmarks.md``). The
positions are fixed, so the second frame is no line search; without ``classes`` (no model given) there is no
such frame. The same check now holds for round 10's one frame too: a frame between two rows the model answers
differently is a mixture (a thief that sent each natural row, the nearest of another class to the one before,
followed by one mix of the two was flagged by the shift test or PRADA at 90-480 rows or never; now by this
test at 40-50). A video that blends across its scene cuts pays for it (every pair blended, cuts included: 2 of
6 streams flagged near their 900th row; a quarter of the pairs blended: 0 of 6).

Round 21: ``frames`` tells the caller which rows are such frames (checked by the model; not gain copies): the
theft defence counts them as typical rows in its shift test, as a blend of two rows sits further from the data
than either. Scenes of ~45 frames blended across every cut were flagged in 4 of 8 streams (the frames' shift
plus PRADA, which up-converted streams fail); now 0 of 8. Cuts every 10-20 frames stay flagged (their
cross-class frames are 4 % of the rows: a thief's mixtures).

Both are measured against the row's distance to its nearest earlier row, with the mixtures test's keyed
threshold: a row is ordinary where its distance to the segment (or to the gain copy) is below the threshold's
share of it — where the hull test itself would have called it a mixture on that segment alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_THIRDS_TOL = 0.06  # how far from a third (or two thirds) of the way a frame of 3x up-conversion may sit


def _segment_distance(x: np.ndarray, p: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of ``x`` (``(f,)``) to each segment from ``p`` (``(f,)``) to a row of ``b`` (``(k, f)``)."""
    return _segment_position(x, p, b, clip=True)[0]


def _gain_distance(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of ``x`` to each row ``h`` of ``b`` at its best gain: ``|x - clip(g·h, lo, hi)|`` with ``lo``
    and ``hi`` the row's own range and ``g`` fitted on its unclipped features (``inf`` where ``g <= 0``)."""
    lo, hi = float(x.min()), float(x.max())
    free = (x > lo) & (x < hi)
    g = (b[:, free] @ x[free]) / np.maximum(np.einsum("kf,kf->k", b[:, free], b[:, free]), 1e-24)
    err = np.linalg.norm(x - np.clip(g[:, None] * b, lo, hi), axis=1)
    return np.where(g > 0, err, np.inf)


def ordinary(
    rows: np.ndarray,
    pos: np.ndarray,
    r: np.ndarray,
    prev: np.ndarray,
    threshold: float,
    k: int,
    back: int | None = None,
    loose: float = 0.0,
    prev2: np.ndarray | None = None,
    classes: Callable[[np.ndarray], np.ndarray] | None = None,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """The mixture ratios ``r`` of the rows at positions ``pos`` of ``rows`` (each against the rows before
    it; ``prev``: the ratio of the row before each), raised to ``threshold`` where the row is an interpolated
    frame from a non-mixture previous row to one of its ``k`` nearest earlier rows — among the last ``back``
    rows before it where given, unless its ratio is at least ``loose`` x ``threshold`` or the row two before
    it (its ratio ``prev2``) is no mixture either — or a gain copy of one of its ``k`` nearest earlier
    rows, or one of two frames at the thirds of a segment whose rows the model answers alike (round 20;
    ``classes``: rows -> their top classes; where given, a one-frame segment's rows must share it too).
    ``frames`` (booleans, one per row, where given): set where the row is such an interpolated frame whose
    classes were checked (not for a gain copy, nor without ``classes``)."""
    out = np.asarray(r, dtype=np.float64).copy()
    for j in np.flatnonzero((out < threshold) & (pos >= 2)):
        i = int(pos[j])
        x, before = rows[i], rows[:i]
        dist = np.linalg.norm(before - x, axis=1)
        nb = np.argsort(dist)[: min(k, i)]
        cut = threshold * float(dist[nb[0]])
        # an exact mix's other end was sent just before the previous row (a frame's other neighbour), not
        # anywhere in the history (a mixer's partner); a row only just in the hull may lie near any segment
        anywhere = out[j] >= loose * threshold or (prev2 is not None and prev2[j] >= threshold)
        ends = nb if back is None or anywhere else nb[(nb >= i - back) & (nb < i - 1)]
        seg = False
        if prev[j] >= threshold and len(ends) > 0:
            near = _segment_distance(x, before[-1], before[ends]) < cut
            seg = bool(near.any())
            if seg and classes is not None:  # (round 20: a frame between two classes is a mixture)
                top = np.asarray(classes(np.vstack([before[-1], x, before[ends[near]]])))
                seg = bool(top[1] == top[0]) and bool((top[2:] == top[0]).any())
        if seg:
            frame = classes is not None  # (without the model: ordinary, but its class was not checked)
        elif float(_gain_distance(x, before[nb]).min()) < cut:
            frame = False  # a gain copy: ordinary, no frame
        elif (  # (asked last: it may ask the model)
            back is not None
            and classes is not None
            and _thirds_frame(rows, i, prev[j], prev2, int(j), threshold, back, cut, classes)
        ):
            frame = True
        else:
            continue
        out[j] = threshold
        if frames is not None:
            frames[j] = frame
    return out


def _segment_position(
    x: np.ndarray, p: np.ndarray, b: np.ndarray, *, clip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``x`` to each line from ``p`` to a row of ``b`` (to each segment with ``clip``) and the
    position ``t`` of its foot on it (0 at ``p``, 1 at the row)."""
    d = b - p
    t = (d @ (x - p)) / np.maximum(np.einsum("kf,kf->k", d, d), 1e-24)
    if clip:
        t = np.clip(t, 0.0, 1.0)
    return np.linalg.norm(x - p - t[:, None] * d, axis=1), t


def _thirds_frame(
    rows: np.ndarray,
    i: int,
    prev: float,
    prev2: np.ndarray | None,
    j: int,
    threshold: float,
    back: int,
    cut: float,
    classes: Callable[[np.ndarray], np.ndarray],
) -> bool:
    """Whether the row at ``i`` is one of two interpolated frames at a third and two thirds of the way
    between an anchor ``P`` (no mixture: the row before it, or the row two before it with the row between the
    other frame) and a frame ``E`` sent among the ``back + 2`` rows before ``P`` (round 20: 3x frame-rate
    up-conversion in decode order, ``E P f f``)."""
    anchors = [(i - 1, False)] if prev >= threshold else []
    if prev2 is not None and prev < threshold and prev2[j] >= threshold:
        anchors.append((i - 2, True))
    for a, between in anchors:
        lo = max(a - back - 2, 0)
        if a - lo < 1:
            continue
        ends = rows[lo:a]
        dx, tx = _segment_position(rows[i], rows[a], ends)
        ok = (dx < cut) & (np.abs(np.abs(tx - 0.5) - 1.0 / 6.0) < _THIRDS_TOL)
        if between and ok.any():
            m = rows[i - 1]
            dm, tm = _segment_position(m, rows[a], ends)
            cut_m = threshold * float(np.linalg.norm(rows[: i - 1] - m, axis=1).min())
            # the other third: the two frames on either side of the middle
            at_third = np.abs(np.abs(tm - 0.5) - 1.0 / 6.0) < _THIRDS_TOL
            ok &= (dm < cut_m) & at_third & ((tm - 0.5) * (tx - 0.5) < 0)
        if ok.any():
            # a segment whose ends and frames the model answers alike says little about where a boundary lies
            # (one call of the model for the row, its anchor, the other frame and every candidate end)
            frames = [rows[a], rows[i]] + ([rows[i - 1]] if between else [])
            top = np.asarray(classes(np.vstack([*frames, ends[ok]])))
            if bool((top[: len(frames)] == top[0]).all()) and bool((top[len(frames) :] == top[0]).any()):
                return True
    return False
