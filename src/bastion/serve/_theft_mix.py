"""The mixtures test of :class:`bastion.serve.theft.TheftDefence`: rows that are convex combinations of rows
the same consumer sent earlier.

An attacker that knows the other tests can keep every synthetic row a fixed gap away from all of its earlier
rows (no small steps) and inside the data (no shift, no tail): it mixes the natural rows it sent (mixup,
near-manifold interpolation, boundary probes ``λa + (1-λ)b``). Each such row lies, up to rounding, in the
convex hull of a few of the consumer's earlier rows, while a natural row does not: its distance to the
hull of its ``k`` nearest earlier rows is a large part of its distance to the nearest one (measured ratio
``r = d_hull / d_nearest``: natural and noisy re-sent rows, single-class streams and drifting series
0.4-1.0; a mixing attacker's synthetic rows 0-0.5, a third of them below 0.25).

Keyed per deployment: ``k`` and the ratio threshold. The base rate (the share of rows below the threshold in
a natural stream) is measured per key on the reference rows, floored at ``mix_floor``; the score is the
binomial tail of the consumer's count of rows below the threshold among its last ``window`` counted rows.

A row is also measured against the segments from each of its ``k`` nearest rows to any earlier row beyond it
(round 10, :func:`pair_distance`): mixup of two distant rows ``λa + (1-λ)b`` has ``a`` near but ``b`` far, out
of the hull of its nearest rows; on breast_cancer the bench's mixup was first flagged at 260-340 rows (6
fixed keys) with the hull alone and at 140-200 with the segments (natural streams: the threshold is the same
keyed quantile of the same ratio over reference rows, so natural rows stay at its 2-4 %).

Two kinds of rows in a hull are ordinary, not mixtures (round 10, :mod:`bastion.serve._theft_segment`): a row
on the segment from the consumer's previous counted row — itself no mixture — to one of its nearest earlier
rows (an interpolated video frame between the frames around it; at most one per non-mixture row, so a mixer
gains at most 2x from it), and a row that is one of its nearest earlier rows at another gain (``clip(g·h)``:
the same input re-scanned brighter or darker lies between its two other gains). Both are sensor behaviours:
they apply where the features are intensity-like (reference rows >= 0; ``TheftPolicy.sensor_rows`` sets it),
not to standardised tabular rows, where they only delay a mixer (breast_cancer bench mixup, 6 fixed keys:
first flag 260-340 without them, 280-380 with them). An exact mix is a frame only with a recent partner
(round 11, ``back`` and ``loose``: a mixer's partner is anywhere in its history). Round 20: where the served
model is given (``predict``), a frame is ordinary only where it answers the segment's ends and frames alike,
and then two frames at the thirds of one segment (3x up-conversion) are ordinary too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bastion.serve._theft_segment import ordinary
from bastion.serve.responses import keyed_generator

_STEPS = 40  # accelerated projected-gradient steps on the simplex (k <= 10: within ~1 % of exact NNLS)
_CALIBRATION_ROWS = 600
_FIXED = 0.25  # the threshold's floor: a mix on the data's grid is at 0-0.5
_RANKS = np.arange(1, 65)  # 1..k for the simplex projection (k <= 10 here)
_ROWS = np.arange(256)
_CHECKS = frozenset((4, 8, 16, 28))  # solver steps at which a row may stop on its certified lower bound


def _simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the probability simplex."""
    m, k = v.shape
    u = np.sort(v, axis=1)[:, ::-1]  # descending (the same values as -sort(-v))
    css = np.cumsum(u, axis=1) - 1.0
    rho = (u - css / _RANKS[:k] > 0).sum(axis=1)
    theta = css[_ROWS[:m] if m <= len(_ROWS) else np.arange(m), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


def hull_distance(x: np.ndarray, nbrs: np.ndarray, *, enough: np.ndarray | None = None) -> np.ndarray:
    """Distance of each row ``x[i]`` to the convex hull of ``nbrs[i]`` (shape ``(m, k, f)``), by accelerated
    projected gradient on the simplex (an upper bound: a row is never called a mixture by an unfinished
    solve). With ``enough``: a row whose certified lower bound (:func:`_gap_bound`, from the current iterate)
    reaches ``enough[i]`` stops there and gets that bound instead; every other row gets the full solve, the
    same to the bit (rows are solved independently)."""
    d = nbrs - x[:, None, :]
    g = np.einsum("mkf,mjf->mkj", d, d)
    lip = np.maximum(np.linalg.eigvalsh(g)[:, -1], 1e-12)
    k = g.shape[1]
    w = np.full((len(x), k), 1.0 / k)
    y, t = w.copy(), 1.0
    out = np.zeros(len(x))
    live = np.arange(len(x))
    scale = np.sqrt(np.einsum("mkk->mk", g).max(axis=1))
    for step in range(_STEPS):
        if enough is not None and step in _CHECKS and len(live):
            bound = _gap_bound(w, g, scale[live])
            done = bound >= enough[live]
            if done.any():
                out[live[done]] = bound[done]
                keep = ~done
                live, g, lip, w, y = live[keep], g[keep], lip[keep], w[keep], y[keep]
        w_next = _simplex(y - np.matmul(g, y[:, :, None])[:, :, 0] / lip[:, None])
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = w_next + (t - 1.0) / t_next * (w_next - w)
        w, t = w_next, t_next
    out[live] = np.sqrt(np.maximum(np.einsum("mk,mkj,mj->m", w, g, w), 0.0))
    return out


def _gap_bound(w: np.ndarray, g: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A certified lower bound on the hull distance from any weights ``w`` (the Frank-Wolfe gap): with ``z =
    Σ w_j d_j``, every hull point ``p`` has ``|p - x| >= min_i z·d_i / |z| = min_i (g w)_i / |z|``; less a
    margin of 1e-8 x the farthest neighbour's distance ``scale`` for rounding (and none below 1e-6 x it)."""
    with np.errstate(all="ignore"):
        gw = np.einsum("mkj,mj->mk", g, w)
        norm = np.sqrt(np.maximum(np.einsum("mk,mk->m", w, gw), 0.0))
        bound = gw.min(axis=1) / norm - 1e-8 * scale
    return np.where(np.isfinite(bound) & (bound >= 1e-6 * scale), bound, -np.inf)


def hull_lower_bound(x: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """A certified lower bound on each row's distance to the convex hull of ``nbrs[i]`` before any solve
    (:func:`_gap_bound` at the weights of ``x``'s projection on the neighbours' affine hull, where the bound
    is the affine distance itself, and at the nearest neighbour's)."""
    d = nbrs - x[:, None, :]
    g = np.einsum("mkf,mjf->mkj", d, d)
    m, k = g.shape[:2]
    diag = np.einsum("mkk->mk", g)
    scale = np.sqrt(diag.max(axis=1))
    ridge = (diag.sum(axis=1) * 1e-9 + 1e-30)[:, None, None] * np.eye(k)
    with np.errstate(all="ignore"):
        w = np.linalg.solve(g + ridge, np.ones((m, k, 1)))[:, :, 0]
        w = w / w.sum(axis=1, keepdims=True)
    near = np.zeros((m, k))
    near[np.arange(m), diag.argmin(axis=1)] = 1.0
    return np.fmax(_gap_bound(w, g, scale), _gap_bound(near, g, scale))


def pair_distance(
    x: np.ndarray, nbrs: np.ndarray, rows: np.ndarray, earlier: np.ndarray, sq: np.ndarray
) -> np.ndarray:
    """Distance of each row ``x[i]`` to the nearest segment from one of its neighbours ``nbrs[i]`` to any
    earlier row (``earlier[i]``) on the far side of it: a mix ``λa + (1-λ)b`` of two rows far apart, whose
    partner ``b`` is not among its nearest rows (mixup of distant seeds). With ``L = |x - a|`` and ``r - a``
    split into ``t`` along ``x - a`` and ``p`` across it, the distance is ``L·p / |r - a|`` (for
    ``0 < L·t <= |r - a|²``)."""
    u = x[:, None, :] - nbrs  # (m, k, f)
    length = np.linalg.norm(u, axis=2)
    unit = u / np.maximum(length, 1e-12)[:, :, None]
    m, k, f = nbrs.shape
    both = (np.concatenate([nbrs, unit]).reshape(2 * m * k, f) @ rows.T).reshape(2, m, k, len(rows))
    a_r = both[0]
    a_sq = np.einsum("mkf,mkf->mk", nbrs, nbrs)
    t = both[1] - np.einsum("mkf,mkf->mk", unit, nbrs)[:, :, None]
    span2 = np.maximum(sq[None, None, :] + a_sq[:, :, None] - 2.0 * a_r, 1e-24)  # |r - a|²
    perp = np.sqrt(np.maximum(span2 - t * t, 0.0))
    d = length[:, :, None] * perp / np.sqrt(span2)
    ok = earlier[:, None, :] & (t > 0) & (length[:, :, None] * t <= span2) & (length[:, :, None] > 0)
    return np.asarray(np.where(ok, d, np.inf).min(axis=(1, 2)))


class MixRule:
    """Keyed mixture ratios of a consumer's counted rows against its earlier counted rows (its history)."""

    def __init__(
        self,
        *,
        secret: bytes,
        reference: np.ndarray,
        history: int,
        floor: float,
        sensor: bool | None = None,
        predict: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        rng = keyed_generator(secret, "mixtures")
        self._predict = predict  # the thirds frames' same-answer check (_theft_segment); None: no such frames
        self.k = int(rng.integers(6, 11))  # neighbours whose hull is tried
        quantile = float(rng.uniform(0.02, 0.04))  # r below the reference stream's quantile: a mixture
        x = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)
        # the sensor exemptions (_theft_segment) for intensity-like rows only: standardised tabular rows have
        # no frames to interpolate and no gain, and there the exemptions only help a mixer
        self.sensor = bool(x.min() >= 0.0) if sensor is None else bool(sensor)
        # an interpolated frame's other neighbour: among the last ``back`` rows before it (_theft_segment)
        frames = keyed_generator(secret, "mixtures-frames")
        self.back = int(frames.integers(3, 5))
        self.loose = float(frames.uniform(0.3, 0.4))  # ... unless its ratio is this share of the threshold
        x = x[rng.permutation(len(x))[:_CALIBRATION_ROWS]]
        ring = np.zeros((history, x.shape[1]), dtype=np.float32)
        ring[: min(len(x), history)] = x[:history]
        self.threshold = _FIXED  # (while calibrating: the plain ratios, so the base rate errs high)
        self.exempt = False
        self.calibrated = False
        seen = []
        for start in range(1, len(x), 100):  # the reference rows as one natural stream, in a keyed order
            stop = min(start + 100, len(x))
            if stop > history:
                break
            seen.append(self.ratios(ring, stop, stop - start))
        r = np.concatenate(seen) if seen else np.ones(1)
        self.threshold = max(float(np.quantile(r, quantile)), _FIXED)
        self.base = max(float((r < self.threshold).mean()), floor)
        self.exempt = self.sensor
        self.calibrated = True

    def ratios(
        self, hist: np.ndarray, hist_n: int, m: int, *, frames: np.ndarray | None = None
    ) -> np.ndarray:
        """``r`` for the last ``m`` rows added to the ring ``hist`` (``hist_n`` rows ever added), each against
        the rows added before it that the ring still holds (1.0 where fewer than 2 exist); an interpolated
        frame or a re-scan at another gain (``_theft_segment``) at ``threshold``, not below it (once
        calibrated). ``frames`` (``m`` booleans, where given): set where the row is an interpolated frame."""
        size = len(hist)
        if m <= 0:
            return np.zeros(0)
        held = min(hist_n, size)
        idx = np.arange(hist_n - held, hist_n)  # absolute indices of the held rows, oldest first
        rows = hist[idx % size].astype(np.float64)
        out = np.ones(m)
        new = np.arange(hist_n - m, hist_n)
        pos = new - (hist_n - held)  # each new row's position in ``rows``
        ok = pos >= 2
        if not ok.any():
            return out
        if not self.exempt:
            return self._plain(rows, pos, ok)
        # the two rows before the first new one too: are they anchors (_theft_segment); a row with under 2
        # rows before it is one
        lead = min(2, int(pos[0]) - 2) if pos[0] >= 3 else 0
        full = np.concatenate([pos[0] - np.arange(lead, 0, -1), pos])
        r = np.concatenate([np.ones(2 - lead), self._plain(rows, full, full >= 2)])
        classes = self._classes if self._predict is not None else None
        return ordinary(
            rows,
            pos,
            r[2:],
            r[1:-1],
            self.threshold,
            self.k,
            self.back,
            self.loose,
            prev2=r[:-2],
            classes=classes,
            frames=frames,
        )

    def _classes(self, rows: np.ndarray) -> np.ndarray:
        """The served model's top class of each row (one column: the positive class at 0.5)."""
        assert self._predict is not None
        p = np.asarray(self._predict(rows.astype(np.float32))).reshape(len(rows), -1)
        return (p[:, 0] >= 0.5).astype(np.int64) if p.shape[1] == 1 else p.argmax(axis=1)

    def _plain(self, rows: np.ndarray, pos: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """``r`` of the rows at positions ``pos`` of ``rows`` (those ``ok``; 1.0 elsewhere), each against the
        rows before it."""
        out = np.ones(len(pos))
        sel = np.flatnonzero(ok)
        xs = rows[pos[sel]]
        sq = np.einsum("ij,ij->i", rows, rows)
        d2 = sq[None, :] + np.einsum("ij,ij->i", xs, xs)[:, None] - 2.0 * (xs @ rows.T)
        d2 = np.where(np.arange(len(rows))[None, :] < pos[sel][:, None], np.maximum(d2, 0.0), np.inf)
        k = min(self.k, len(rows) - 1)
        nb = np.argpartition(d2, k - 1, axis=1)[:, :k]
        near = np.sqrt(np.take_along_axis(d2, nb, axis=1))
        fin = np.isfinite(near)
        nearest = np.where(fin, near, np.inf).min(axis=1)
        nbrs = rows[nb]
        # neighbours beyond a row's own earlier rows (fewer than k of them) repeat its nearest one
        first = nb[np.arange(len(sel)), np.where(fin, near, np.inf).argmin(axis=1)]
        nbrs = np.where(fin[:, :, None], nbrs, rows[first][:, None, :])
        # a mix of two rows far apart: its partner is no near row (round 10: mixup of distant seeds)
        earlier = np.arange(len(rows))[None, :] < pos[sel][:, None]
        pair = pair_distance(xs, nbrs, rows, earlier, sq)
        hull = np.array(pair)
        # r is read only against the threshold (here, _theft_segment, the judge), so once calibrated (the
        # calibration's quantile reads r itself) a row stops as soon as a certified lower bound on its hull
        # distance reaches its segment distance (r is the segment's, exactly) or the threshold (r stays above
        # it): before any solve (hull_lower_bound) or during it; every other row gets the full solve
        enough = np.minimum(pair, self.threshold * nearest * (1.0 + 1e-9)) if self.calibrated else None
        solve = np.ones(len(sel), dtype=bool)
        if enough is not None:
            lower = hull_lower_bound(xs, nbrs)
            solve = lower < enough
            hull = np.where(solve, hull, np.minimum(lower, pair))
        if solve.any():
            cut = None if enough is None else enough[solve]
            hull[solve] = np.minimum(hull_distance(xs[solve], nbrs[solve], enough=cut), pair[solve])
        out[sel] = np.where(nearest > 0, hull / np.maximum(nearest, 1e-12), 1.0)
        return out
