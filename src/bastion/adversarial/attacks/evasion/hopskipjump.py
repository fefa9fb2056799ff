"""HopSkipJumpAttack (label-only; Chen, Jordan & Wainwright, IEEE S&P 2020), L2 and L∞."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_norm,
    check_positive,
    clip_of,
)
from bastion.adversarial.attacks.evasion.interface import BlackBoxResult, EnsembleConfig
from bastion.adversarial.attacks.evasion.registry import register_black_box_attack
from bastion.models.interface import ModelAdapter


def _dist(a: np.ndarray, b: np.ndarray, norm: str) -> float:
    d = (a - b).reshape(-1)
    return float(np.abs(d).max() if norm == "inf" else np.linalg.norm(d))


def hop_skip_jump(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    norm: str = "l2",
    iterations: int = 20,
    init_evals: int = 100,
    max_evals: int = 1000,
    init_trials: int = 100,
    seed: int = 0,
) -> BlackBoxResult:
    """HopSkipJumpAttack (untargeted, label-only): boundary search, Monte-Carlo gradient, geometric steps.

    Returns inputs on the adversarial side of the boundary with the smallest distance found; an example for
    which no adversarial starting point was found is returned unchanged.
    """
    norm = check_norm(norm)
    iterations = check_positive("iterations", iterations)
    xs, ys = batch(model, x, y)
    clip = clip_of(model)
    lo, hi = clip if clip is not None else (float(xs.min()) - 1.0, float(xs.max()) + 1.0)
    rng = np.random.default_rng(seed)
    dim = int(np.prod(model.input_shape))
    theta = 1.0 / (dim**1.5) if norm == "l2" else 1.0 / (dim**2)
    used = 0
    out = xs.copy()

    for j in range(xs.shape[0]):
        x0, label = xs[j], int(ys[j])

        def is_adv(cands: np.ndarray, label: int = label) -> np.ndarray:
            nonlocal used
            used += cands.shape[0]
            return model.predict(cands.astype(np.float32)) != label

        if bool(is_adv(x0[None])[0]):
            continue  # already misclassified: distance 0
        start = None
        for _ in range(max(1, init_trials // 20)):
            cands = rng.uniform(lo, hi, size=(20, *x0.shape)).astype(np.float32)
            hits = np.flatnonzero(is_adv(cands))
            if hits.size:
                start = cands[hits[0]]
                break
        if start is None:
            continue

        def bsearch(x_adv: np.ndarray, x0: np.ndarray = x0) -> np.ndarray:
            if norm == "l2":
                low, high = 0.0, 1.0
                thresh = theta
                while high - low > thresh:
                    mid = (low + high) / 2
                    if bool(is_adv(((1 - mid) * x0 + mid * x_adv)[None])[0]):
                        high = mid
                    else:
                        low = mid
                return (1 - high) * x0 + high * x_adv
            d = _dist(x_adv, x0, "inf")
            low, high = 0.0, d
            thresh = min(d * theta, theta)
            while high - low > max(thresh, 1e-7):
                mid = (low + high) / 2
                if bool(is_adv(np.clip(x_adv, x0 - mid, x0 + mid)[None])[0]):
                    high = mid
                else:
                    low = mid
            return np.clip(x_adv, x0 - high, x0 + high)

        x_adv = bsearch(start)
        dist = _dist(x_adv, x0, norm)
        for t in range(1, iterations + 1):
            scale = math.sqrt(dim) if norm == "l2" else dim
            delta = 0.1 * (hi - lo) if t == 1 else scale * theta * dist
            n_evals = int(min(init_evals * math.sqrt(t), max_evals))
            u = (
                rng.standard_normal((n_evals, *x0.shape))
                if norm == "l2"
                else rng.uniform(-1, 1, (n_evals, *x0.shape))
            ).astype(np.float32)
            u /= np.sqrt((u.reshape(n_evals, -1) ** 2).sum(axis=1)).reshape(-1, *[1] * x0.ndim) + 1e-12
            perturbed = np.clip(x_adv + delta * u, lo, hi)
            rv = (perturbed - x_adv) / max(delta, 1e-12)
            fval = is_adv(perturbed).astype(np.float32) * 2 - 1
            if np.all(fval == 1):
                grad = rv.mean(axis=0)
            elif np.all(fval == -1):
                grad = -rv.mean(axis=0)
            else:
                fval = fval - fval.mean()
                grad = (fval.reshape(-1, *[1] * x0.ndim) * rv).mean(axis=0)
            update = grad / (np.linalg.norm(grad) + 1e-12) if norm == "l2" else np.sign(grad)
            step = 2.0 * dist / math.sqrt(t)
            for _ in range(25):
                cand = np.clip(x_adv + step * update, lo, hi).astype(np.float32)
                if bool(is_adv(cand[None])[0]):
                    break
                step /= 2.0
            else:
                cand = x_adv
            x_adv = bsearch(cand)
            dist = _dist(x_adv, x0, norm)
        out[j] = x_adv
    return BlackBoxResult(x_adv=out.astype(np.float32), queries=int(used))


def _ensemble_options(
    model: ModelAdapter, eps: float, norm: str, config: EnsembleConfig
) -> dict[str, Any] | None:
    """HopSkipJump in the ensemble: a minimum-norm attack on the first ``hsj_examples`` rows."""
    if config.hsj_iterations <= 0 or config.hsj_examples <= 0:
        return None
    return {"norm": norm, "iterations": config.hsj_iterations}


register_black_box_attack(
    "hopskipjump", hop_skip_jump, seed_offset=3, options=_ensemble_options, examples=lambda c: c.hsj_examples
)
