"""Square Attack (L∞, score-based; Andriushchenko et al., ECCV 2020) with the margin loss on probabilities
and AutoAttack's ``p`` schedule; a flat input whose length is a square is viewed as an image."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_eps,
    check_positive,
    clip_np,
    clip_of,
    image_view,
)
from bastion.adversarial.attacks.evasion.interface import BlackBoxResult, EnsembleConfig
from bastion.adversarial.attacks.evasion.registry import register_black_box_attack
from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter


def _margin(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = model.predict_proba(x)
    true = p[np.arange(len(y)), y]
    other = p.copy()
    other[np.arange(len(y)), y] = -np.inf
    return true - other.max(axis=1)


def _p_schedule(p_init: float, i: int, n_queries: int) -> float:
    it = int(i / max(n_queries, 1) * 10000)
    for k, limit in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= limit:
            return p_init / (2**k)
    return p_init / 512


def square(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    eps: float,
    queries: int = 1000,
    p_init: float = 0.8,
    seed: int = 0,
) -> BlackBoxResult:
    """Square Attack (L∞): random square updates of ±eps, kept when the margin loss drops."""
    eps = check_eps(eps)
    queries = check_positive("queries", queries)
    if getattr(model, "label_only", False):
        raise InvalidInput("the square attack needs scores; use hop_skip_jump on a label-only model")
    xs, ys = batch(model, x, y)
    clip = clip_of(model)
    rng = np.random.default_rng(seed)
    c, h, w = image_view(model.input_shape)
    n = xs.shape[0]
    x3 = xs.reshape(n, c, h, w)
    delta = eps * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, c, 1, w))
    delta = np.broadcast_to(delta, x3.shape).copy()
    x_adv = clip_np(x3 + delta, clip)
    delta = x_adv - x3
    margin = _margin(model, x_adv.reshape(xs.shape), ys)
    used = n
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    for i in range(queries - 1):
        active = np.flatnonzero(margin > 0)
        if active.size == 0 or eps == 0:
            break
        p = _p_schedule(p_init, i, queries)
        if h > 1:
            s = int(min(max(round(math.sqrt(p * h * w)), 1), h - 1))
            sh, sw = s, s
        else:
            sh, sw = 1, int(min(max(round(p * w), 1), w - 1))
        r0 = rng.integers(0, h - sh + 1, size=active.size)[:, None, None]
        c0 = rng.integers(0, w - sw + 1, size=active.size)[:, None, None]
        window = (rows >= r0) & (rows < r0 + sh) & (cols >= c0) & (cols < c0 + sw)
        signs = eps * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(active.size, c, 1, 1))
        cand = np.where(window[:, None, :, :], signs, delta[active])
        x_new = clip_np(x3[active] + cand, clip)
        m_new = _margin(model, x_new.reshape((active.size, *xs.shape[1:])), ys[active])
        used += active.size
        improved = m_new < margin[active]
        idx = active[improved]
        delta[idx] = x_new[improved] - x3[idx]
        margin[idx] = m_new[improved]
    return BlackBoxResult(x_adv=(x3 + delta).reshape(xs.shape).astype(np.float32), queries=int(used))


def _ensemble_options(
    model: ModelAdapter, eps: float, norm: str, config: EnsembleConfig
) -> dict[str, Any] | None:
    """Square in the ensemble: L-inf only, and it needs scores (not labels alone)."""
    if config.square_queries <= 0 or norm != "inf" or getattr(model, "label_only", False):
        return None
    return {"eps": eps, "queries": config.square_queries}


register_black_box_attack("square", square, seed_offset=2, options=_ensemble_options)
