"""Copies of one input through another lens (issue 20, round 11, fix20w): the newcomers' pool's re-scans
beyond gain (:func:`bastion.serve._theft_pool.rescans`).

Honest newcomers send the same public images, each through its own camera: one is in focus, the next a little
blurred. Blurred copies of one image lie along a curve — each in the hull of its sharper and blurrier copies
from other accounts, and within the small-steps radius of them — so the pool read 40 such accounts as a
mixing Sybil (attack20d: 32 of 40 answered as flagged, reason ``mixtures``). A copy is the other through an
isotropic low-pass filter: ``x ~ K * h`` for a kernel ``K`` with non-negative taps that depend only on the
offset's distance class (5 x 5: 6 taps; a gain is ``K = g·δ``), fitted by non-negative least squares either
way round (the blurrier row is the filtered one). On digits, Gaussian blurs (sigma 0.3-1.0, reflect borders,
truncated as ``scipy.ndimage`` does) of one image fit each other within 0.28 x the re-send radius (median
0.04); a mix of two digits (lambda 0.2-0.8) with either partner or a blurred partner is >= 0.5 x it (1 %
of them below 1.8 x), two nearest distinct digits >= 4.3 x: a copy is within a keyed share of the re-send
radius in :data:`FILTER_TOL` (a gain copy alone: ``RESCAN_TOL``, exact).

Only for square images of intensity-like features (the mixtures test's ``sensor`` rows). Limits: a Sybil
may send blurred (or dimmed) copies of pooled rows without the pool counting them (near duplicates that tell a
copy little beyond the rows they blur); ``K = δ`` is a kernel too, so on images a step shorter than the
tolerance (< 0.45 x the re-send radius) off a pooled row is a copy, no longer one of the pool's steps along
the data (round 10); a stronger blur than the 5 x 5 kernel holds (sigma >~ 1.2 on 8 x 8 digits), another
PSF shape (a disk) or blur plus noise is not matched, and counts as before.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.optimize import nnls

from bastion.serve._theft_policy import derive
from bastion.serve.responses import keyed_generator

RADIUS = 2  # the kernel's half-width (5 x 5)
FILTER_TOL = (0.35, 0.45)  # a filtered copy: within a keyed share in this range of the re-send radius


def _classes(radius: int) -> list[list[tuple[int, int]]]:
    """The kernel's offsets grouped by distance class ``(min(|a|, |b|), max(|a|, |b|))``."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for a in range(-radius, radius + 1):
        for b in range(-radius, radius + 1):
            groups.setdefault((min(abs(a), abs(b)), max(abs(a), abs(b))), []).append((a, b))
    return [groups[c] for c in sorted(groups)]


_OFFSETS = _classes(RADIUS)


@functools.lru_cache(maxsize=64)
def filter_tolerance(secret: bytes) -> float:
    """The deployment's keyed share of the re-send radius within which a row is a filtered copy."""
    return float(keyed_generator(derive(secret, "pool-family"), "tolerance").uniform(*FILTER_TOL))


def side(n_features: int) -> int | None:
    """The side of a square image of ``n_features`` pixels (at least 4 x 4), or None."""
    s = math.isqrt(n_features)
    return s if s * s == n_features and s >= 4 else None


def taps(h: np.ndarray, width: int) -> np.ndarray:
    """For rows ``h`` (``(n, width²)``), each tap's image (``(n, width², taps)``): the sum of the row's pixels
    at the offsets of one distance class (borders reflected, as ``scipy.ndimage``'s default)."""
    r = RADIUS
    im = np.pad(h.reshape(-1, width, width), ((0, 0), (r, r), (r, r)), mode="symmetric")
    cols = []
    for group in _OFFSETS:
        acc = np.zeros((len(h), width, width))
        for a, b in group:
            acc += im[:, r + a : r + a + width, r + b : r + b + width]
        cols.append(acc.reshape(len(h), -1))
    return np.stack(cols, axis=2)


def filtered(x: np.ndarray, h: np.ndarray, width: int, tol: float) -> np.ndarray:
    """For each pair ``x[i]``, ``h[i]``: is one the other through a non-negative isotropic kernel (``K``
    with a positive sum), within ``tol``?"""
    x, h = np.asarray(x, dtype=np.float64), np.asarray(h, dtype=np.float64)
    out = np.zeros(len(x), dtype=bool)
    if not len(x):
        return out
    for a, b in ((x, h), (h, x)):  # a ~ K * b
        design = taps(b, width)
        for i in np.flatnonzero(~out):
            w, err = nnls(design[i], a[i])
            out[i] = err < tol and w.sum() > 0
    return out


__all__ = ["FILTER_TOL", "RADIUS", "filter_tolerance", "filtered", "side", "taps"]
