"""PRADA's Shapiro-Wilk threshold per deployment, for the theft defence's monitor (issue 20, round 11).

PRADA (:mod:`bastion.serve.monitor`) flags a client whose nearest-distance set fails a normality test,
``W < delta``, with ``delta = 0.9`` tuned on the digits training split (benign windows: W above 0.92). How
normal natural nearest distances are depends on the data: on breast_cancer (standardised tabular rows, a
long tail of isolated rows) natural streams in random order reach W 0.62-0.72 (training split, 8 streams
of 400 rows) and 0.51-0.72 (the 143-row held-out split), so PRADA "fired" on every natural breast_cancer
stream and the theft defence's corroboration (``corroborate_z``) turned any shift z >= 3 into a flag:
clients that re-send each input with a glitch on 1-3 features (shift z 3.1-3.3: the glitches lean out)
were flagged in 10/10 streams (round-10 cold review).

The threshold is measured per key on the reference rows: natural streams (keyed orders of a keyed
subsample), their W after every ``STEP`` rows as the monitor computes it (over the last ``distance_window``
distances, from ``min_queries`` on); the threshold is ``delta`` where the lowest of those stays ``MARGIN``
above it, lowered to that lowest W less ``MARGIN`` otherwise, and PRADA is off (0: W is never below it)
where that would fall under ``FLOOR`` — a test that natural streams fail cannot tell small steps from data.
Digits: the lowest natural W is 0.92-0.97, ``delta`` stays 0.9; breast_cancer: PRADA off.
"""

from __future__ import annotations

import numpy as np

from bastion.serve._theft_policy import derive
from bastion.serve.monitor import ExtractionMonitor, shapiro_w
from bastion.serve.responses import keyed_generator

STREAMS = 8
ROWS = 400
STEP = 10
MARGIN = 0.02
FLOOR = 0.8


def prada_delta(
    reference: np.ndarray, *, secret: bytes, delta: float, min_queries: int, window: int
) -> float:
    """The Shapiro-Wilk threshold for a deployment with these ``reference`` rows (0.0: PRADA off)."""
    x = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    rng = keyed_generator(secret, "prada-delta")
    low = 1.0
    for _ in range(STREAMS):
        z = x[rng.permutation(len(x))[:ROWS]]
        if len(z) <= min_queries:
            return delta  # too few rows to measure: the configured threshold
        sq = np.einsum("ij,ij->i", z, z)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        d2[np.triu_indices(len(z))] = np.inf  # each row against the rows before it
        dist = np.sqrt(np.maximum(d2[1:].min(axis=1), 0.0))
        for end in range(min_queries, len(dist) + 1, STEP):
            part = dist[max(0, end - window) : end]
            if np.ptp(part) > 0:
                low = min(low, shapiro_w(part))
    if low >= delta + MARGIN:
        return delta
    return low - MARGIN if low - MARGIN >= FLOOR else 0.0


def tune_prada(monitor: ExtractionMonitor, reference: np.ndarray, secret: bytes) -> None:
    """Set the theft defence's PRADA up for the deployment ``secret``: a re-send with a glitch on a few
    features adds no distance (:func:`bastion.serve.monitor.sparse_resend`, a keyed share in 0.95-0.98 of
    the difference on its 6 largest features; natural nearest neighbours: at most 0.92), and the threshold
    follows the reference rows (:func:`prada_delta`)."""
    monitor.resend_share = float(keyed_generator(derive(secret, "monitor"), "resend").uniform(0.95, 0.98))
    cfg = monitor.config
    monitor.delta = prada_delta(
        reference,
        secret=derive(secret, "prada"),
        delta=cfg.delta,
        min_queries=cfg.min_queries,
        window=cfg.distance_window,
    )
