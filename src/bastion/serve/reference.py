"""What the theft defence compares a consumer's queries with: the training data, class by class.

:class:`ReferenceScorer` turns each query's mean distance to its ``k`` nearest training rows of the class the
model predicts for it into a percentile of that class's leave-one-out distances (the calibration needs no
held-out data: a leave-one-out distance is distributed like a new natural row's), and keeps the
nearest-neighbour distances between training rows for the small-steps test.

It scores every query twice: as sent, and in a **rank view** (:func:`rank_view`: each row's features replaced
by their ranks within the row, standardised, against the training rows treated the same way), which does not
change under any increasing transform of a row's values — a gain and offset, a contrast or gamma curve,
clipping (up to ties) — so a client whose inputs differ from the training data that way (a brighter or dimmer
scanner, a sensor with another contrast) can be told from one whose inputs are out of distribution in shape
(round 7, attack20 F2: natural digits x1.25 / x0.8 were flagged by the shift test and then misinformed; a
plain standardisation, invariant to gain and offset only, left the clipped brighter rows slightly shifted).
Interpolations, random and bucket-shaped rows stay far from the training rows in both views (further in the
rank view: jitter breaks the ties of natural rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.errors import InvalidInput


def rank_view(x: Any) -> np.ndarray:
    """Each row's ranks (ties averaged) minus their mean, over their standard deviation: unchanged by any
    increasing transform of the row's values (a constant row maps to 0)."""
    from scipy.stats import rankdata

    rows = rankdata(np.asarray(x, dtype=np.float64).reshape(len(x), -1), axis=1)
    centred = rows - rows.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    return centred / np.where(sd > 1e-12, sd, 1.0)


class _View:
    """Per-class kNN distances of queries to one view of the reference rows, calibrated leave-one-out."""

    def __init__(self, refs: list[np.ndarray], k: int) -> None:
        self.k = k
        self.refs = refs
        self.sq = [np.einsum("ij,ij->i", r, r) for r in refs]
        self.cal = [np.sort(self._knn(r, c, loo=True)) for c, r in enumerate(refs)]
        self._all = np.concatenate(refs)
        self._all_sq = np.concatenate(self.sq)
        self._owner = np.concatenate([np.full(len(r), c) for c, r in enumerate(refs)])
        self._cal_max = np.array([max(float(c[-1]), 1e-12) for c in self.cal])

    def _knn(self, q: np.ndarray, c: int, *, loo: bool = False) -> np.ndarray:
        d2 = self.sq[c][None, :] + np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * (q @ self.refs[c].T)
        if loo:
            np.fill_diagonal(d2, np.inf)
        d2 = np.partition(np.maximum(d2, 0.0), self.k - 1, axis=1)[:, : self.k]
        return np.sqrt(d2).mean(axis=1)

    def score(self, q: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist = np.empty(len(q))
        pct = np.empty(len(q))
        for c in np.unique(pred):  # each query against the rows of its predicted class only
            sel = pred == c
            dist[sel] = self._knn(q[sel], int(c))
            cal = self.cal[int(c)]
            pct[sel] = np.searchsorted(cal, dist[sel], side="right") / len(cal)
        return pct, dist / self._cal_max[pred]


class ReferenceScorer:
    """Class-conditional kNN distance of queries to the training data, as calibrated percentiles."""

    def __init__(
        self, *, x: np.ndarray, y: np.ndarray, n_classes: int, k: int, max_rows: int, rng: np.random.Generator
    ) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        y = np.asarray(y, dtype=np.int64)
        if len(x) != len(y) or len(x) < 2 * n_classes:
            raise InvalidInput("the reference data must hold labelled rows of every class")
        self.k = k
        refs: list[np.ndarray] = []
        for c in range(n_classes):
            rows = x[y == c]
            if len(rows) > max_rows // n_classes:
                rows = rows[rng.permutation(len(rows))[: max_rows // n_classes]]
            if len(rows) <= k:
                raise InvalidInput(f"the reference data has too few rows of class {c} (need > {k})")
            refs.append(rows)
        self._raw = _View(refs, k)
        self._ranked = _View([rank_view(r) for r in refs], k)
        self.refs = refs
        self._all, self._owner = self._raw._all, self._raw._owner  # every reference row and its class
        # Nearest-neighbour distances between distinct natural rows (leave-one-out over the reference): a
        # consumer whose new rows keep landing closer than this to its own earlier rows is walking in small
        # steps (Jacobian augmentation, jittered seeds, interpolation ends), unlike natural traffic.
        every = np.concatenate(refs)
        if len(every) > max_rows:
            every = every[rng.permutation(len(every))[:max_rows]]
        sq = np.einsum("ij,ij->i", every, every)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (every @ every.T)
        np.fill_diagonal(d2, np.inf)
        self.nn1 = np.sort(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))

    def score(self, x: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(percentile in [0, 1] within the predicted class, distance / that class's largest LOO distance)."""
        return self._raw.score(np.asarray(x, dtype=np.float64), pred)

    def score_ranked(self, x: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same in the rank view (:func:`rank_view` of the query and of the reference)."""
        return self._ranked.score(rank_view(x), pred)


def projection_scale(x: Any, *, directions: int = 32) -> float:
    """The typical spread of ``<w, x>`` over unit directions ``w`` (sets the watermark wave's frequency)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    dirs = np.random.default_rng(1).standard_normal((directions, flat.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return float((flat @ dirs.T).std(axis=0).mean())


__all__ = ["ReferenceScorer", "projection_scale", "rank_view"]
