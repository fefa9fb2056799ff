"""The deployment wave of :class:`bastion.watermark.consumer.ConsumerWatermark`: one keyed signal common to
every consumer's answers, and the provenance test that finds it in a suspect.

A per-consumer wave is on a different class and direction for each consumer, so a thief who asks the same
rows through K unlinked accounts and trains on the per-class minimum or median of the K answers keeps the
un-bumped value of every class (the mean divides each bump by K): no consumer is named (round-12 cold review
attack20f, issue 20). The deployment wave is the same on every account's answer to a row, so no aggregate
across accounts removes it: a copy trained on any mix of this deployment's answers carries it, and the
provenance test says "trained on this deployment's answers" where no consumer can be named. It does not say
which accounts asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bastion.watermark._consumer_stats import rank_residual, segment_scores

DEPLOYMENT_LABEL = "bastion-api-deployment-v1"
DEPLOYMENT_EPS = 0.2  # the deployment wave's amplitude (the consumer wave keeps its own ``eps``)
MAX_POOLED = 20_000  # pooled probes tested (beyond this a seeded, public subsample)


def wave_params(
    seed: bytes, n_features: int, n_classes: int, freq: float, *, keyed_freq: bool
) -> tuple[np.ndarray, int, int, float, float]:
    """Direction, target class, alt class, phase and frequency of a keyed wave, from its HKDF sub-key: a
    consumer's (``freq`` as given) or the deployment's (``keyed_freq``: a keyed frequency near the consumer
    waves', drawn last so the other draws are the consumers' recipe)."""
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    direction = rng.standard_normal(n_features)
    direction /= np.linalg.norm(direction)
    target = int(rng.integers(0, n_classes))
    alt = int((target + 1 + rng.integers(0, n_classes - 1)) % n_classes)
    phase = float(rng.uniform(0.0, 2.0 * np.pi))
    # a copy learns these slow waves best: the deployment's stays near the consumers' frequency
    return direction, target, alt, phase, float(freq * rng.uniform(0.8, 1.25)) if keyed_freq else freq


def basis(signals: Sequence[Any], x: np.ndarray) -> np.ndarray:
    """``cos`` and ``sin`` of each signal's argument on ``x``: what a copy may carry of those waves (a copy
    learns a wave with some phase error, the ``sin`` column takes that up)."""
    cols = []
    for sig in signals:
        arg = sig.freq * (x @ sig.direction) + sig.phase
        cols += [np.cos(arg), np.sin(arg)]
    return np.column_stack(cols) if cols else np.zeros((len(x), 0))


def partial_out(residuals: Sequence[np.ndarray], cols: np.ndarray) -> list[np.ndarray]:
    """Each residual less its least-squares fit on ``cols`` (and a constant): another keyed wave the copy
    carries is taken out before the test, so it does not widen the null waves' spread (the nulls are
    independent of those waves, so the calibration holds)."""
    if cols.shape[1] == 0:
        return list(residuals)
    design = np.column_stack([np.ones(len(cols)), cols])
    out = []
    for r in residuals:
        coef, *_ = np.linalg.lstsq(design, r, rcond=None)
        out.append(r - design @ coef)
    return out


def residuals(
    answers: np.ndarray,
    base: np.ndarray,
    tgt: np.ndarray,
    top: np.ndarray,
    *,
    marks: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    cols: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The suspect's two residuals on class ``tgt`` (its probability less the clean model's, and the rank
    residual of its log-odds against ``top``), those that vary, each less its least-squares fit on what the
    *other* keyed waves do to that residual: per ``(marked, unmarked)`` pair of clean answers with and without
    such a wave, the same residual of ``marked`` against ``unmarked``, plus the waves' ``cols``. The exact
    effect of a wave (clipped where the top class leaves no room, renormalised) is taken out, not only its
    ``cos``: a copy that carries it exactly leaves nothing of it to widen the null waves' spread."""
    rows = np.arange(len(answers))
    out = []
    for rank in (False, True):
        r = rank_residual(answers, base, rows, tgt, top) if rank else answers[rows, tgt] - base[rows, tgt]
        if np.ptp(r) <= 0:
            continue
        fit = [rank_residual(m, u, rows, tgt, top) if rank else m[rows, tgt] - u[rows, tgt] for m, u in marks]
        design = [*fit, *([] if cols is None else [cols])]
        out.append(partial_out([r], np.column_stack(design) if design else np.zeros((len(r), 0)))[0])
    return out


def provenance(
    *,
    wave: Callable[[np.ndarray], np.ndarray],
    targets: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray],
    freq: float,
    xs: Sequence[np.ndarray],
    answers: Sequence[np.ndarray],
    bases: Sequence[np.ndarray],
    avoid: Sequence[np.ndarray] = (),
    others: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]
    | None = None,
    nulls: int = 200,
    seed: int = 1,
) -> tuple[float, float, int]:
    """z and p-value (Bonferroni over the two residuals) of the deployment wave in a suspect's answers on the
    pooled probes of every tested consumer, calibrated against random null waves of the same frequency
    exactly like the consumer test; and the number of rows tested. ``wave(x)`` and ``targets(top)`` are the
    deployment signal's (``targets(x, top, avoid)``: the carrier class per row, never the class ``avoid``
    of the consumer whose probe the row is);
    ``others(x, base)`` gives the other keyed waves' ``cols`` and ``marks`` (see
    :func:`residuals`: the best-scoring consumers' waves), taken out first."""
    from scipy.stats import norm

    if not xs:
        return 0.0, 1.0, 0
    x = np.concatenate(xs)
    ans = np.concatenate(answers)
    base = np.concatenate(bases)
    skip = np.concatenate(avoid) if avoid else None
    rng = np.random.default_rng(seed)  # public randomness: the nulls and the subsample hold no secret
    if len(x) > MAX_POOLED:
        keep = np.sort(rng.choice(len(x), MAX_POOLED, replace=False))
        x, ans, base = x[keep], ans[keep], base[keep]
        skip = None if skip is None else skip[keep]
    dirs = rng.standard_normal((nulls, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, nulls)
    top = base.argmax(axis=1)
    tgt = np.asarray(targets(x, top, skip))
    cols, marks = others(x, base) if others is not None else (None, [])
    rs = residuals(ans, base, tgt, top, marks=marks, cols=cols)
    if not rs:
        return 0.0, 1.0, len(x)
    null_waves = np.cos(freq * (x @ dirs.T) + phases)
    zs = segment_scores(rs, np.asarray(wave(x)), null_waves)
    z = max(zs)
    return float(z), float(min(1.0, norm.sf(z) * len(zs))), len(x)


__all__ = [
    "DEPLOYMENT_EPS",
    "DEPLOYMENT_LABEL",
    "MAX_POOLED",
    "basis",
    "partial_out",
    "provenance",
    "residuals",
    "wave_params",
]
