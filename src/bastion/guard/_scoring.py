"""The linear heads' n-gram part over ranges of positions (``classifier.GuardModel._logit``).

A range's value is the sum of its n-gram weights over its length norm (sqrt of its n-gram count, at least
sqrt(``floor``), or count / sqrt(``cap``) beyond ``cap``); the n-gram part of a head is the maximum over the
whole text, the windows of a text longer than ``window`` positions and, with ``cuts``, its line / sentence-
like segments. ``windows_only`` (round 14, a signed key of a documents head) leaves the whole-text range out
for a text longer than the window: the whole-text term is the mean weight x sqrt(N) up to ``cap`` n-grams,
so a long ordinary document whose every window is below the threshold (contracts, terms of service, letters:
slightly positive imperative vocabulary throughout) could still reach it by its length alone, while the
windows, which cover the whole text with stride ``stride``, still see any one injected passage at the scale
of a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bastion.guard._hashing import length_norm


@dataclass
class Bag:
    """One text's n-gram positions and buckets, concatenated once for every head that scores it (round 17)."""

    length: int
    pos: np.ndarray
    buckets: np.ndarray
    _counts: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, families: list[tuple[np.ndarray, np.ndarray]]) -> Bag | None:
        if not families:
            return None
        length = max(int(p[-1]) for p, _ in families) + 1
        return cls(length, np.concatenate([p for p, _ in families]), np.concatenate([b for _, b in families]))

    def counts(self) -> np.ndarray:
        """n-grams per position (float64)."""
        if self._counts is None:
            self._counts = np.bincount(self.pos, minlength=self.length).astype(np.float64)
        return self._counts


def _range_means(
    gs: np.ndarray, cs: np.ndarray, starts: np.ndarray, ends: np.ndarray, cap: int, floor: int
) -> float:
    counts = np.maximum(cs[ends] - cs[starts], 1.0)
    norms = np.sqrt(np.maximum(counts, floor))
    if cap > 0:
        norms = np.where(counts <= cap, norms, counts / math.sqrt(cap))
    return float(((gs[ends] - gs[starts]) / norms).max())


def linear_best(
    g: np.ndarray,
    c: np.ndarray,
    *,
    window: int,
    stride: int,
    cap: int,
    floor: int,
    cuts: np.ndarray | None = None,
    windows_only: bool = False,
) -> float:
    """Maximum range value: ``g`` / ``c`` are the n-gram weight sums / counts per position of one text."""
    length = len(g)
    best = -math.inf
    if not (windows_only and length > window):
        best = float(g.sum()) / length_norm(float(c.sum()), cap, floor)
    if length <= window and (cuts is None or len(cuts) <= 1):
        return best
    gs = np.concatenate(([0.0], np.cumsum(g)))
    cs = np.concatenate(([0.0], np.cumsum(c)))
    if length > window:
        starts = np.minimum(np.arange(0, length - window + stride, stride), length - window)
        best = max(best, _range_means(gs, cs, starts, starts + window, cap, floor))
    if cuts is not None and len(cuts) > 1:  # round 9: each line / sentence-like segment on its own
        bounds = np.minimum(np.append(cuts, length), length)
        starts, ends = bounds[:-1], bounds[1:]
        keep = cs[ends] - cs[starts] > 0
        if keep.any():
            best = max(best, _range_means(gs, cs, starts[keep], ends[keep], cap, floor))
    return best


def compact(weights: list[np.ndarray]) -> np.ndarray:
    """Round 18 (perf18): two heads' n-gram weights side by side, one row per bucket, so that one gather reads
    both. A signed model stores its weights as float16: as float32 pairs packed in one uint64 per row they are
    the same values once widened, in half the memory (and numpy gathers 8-byte items fast); else float64."""
    pair = np.stack(weights, axis=1)
    small = pair.astype(np.float32)
    if len(weights) == 2 and np.array_equal(small.astype(np.float64), pair):
        return small.view(np.uint64).ravel()
    return pair


def position_sums(families: list[tuple[np.ndarray, np.ndarray]], table: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per position, each head's n-gram weight sum (a column of ``table``, see :func:`compact`), then the
    n-gram count: what ``np.bincount`` gives over the families concatenated (``Bag``), bit for bit. It adds
    in the same order, family after family from 0.0, and a family's positions are distinct (ascending
    starts), so a fancy-indexed ``+=`` adds each once; a family at positions 0..n-1 is added as a slice."""
    length = max(int(p[-1]) for p, _ in families) + 1
    heads = 2 if table.ndim == 1 else table.shape[1]
    sums = [np.zeros(length) for _ in range(heads)]
    counts = np.zeros(length)
    for pos, buckets in families:
        n = len(pos)
        rows = table[buckets]
        if table.ndim == 1:  # float32 pairs: the two columns as strided views
            cols = [rows.view(np.float32)[k::2] for k in range(2)]
        else:
            cols = [rows[:, k] for k in range(heads)]
        dense = pos[0] == 0 and pos[-1] == n - 1
        for g, col in zip(sums, cols, strict=True):
            if dense:
                g[:n] += col
            else:
                g[pos] += col
        if dense:
            counts[:n] += 1.0
        else:
            counts[pos] += 1.0
    return (*sums, counts)
