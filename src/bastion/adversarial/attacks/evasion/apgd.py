"""APGD-CE (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020): momentum 0.75, step size halved at the checkpoints
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` when fewer than ρ = 0.75 of the steps since the last
checkpoint raised the loss or when the best loss did not move."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_eps,
    check_norm,
    check_positive,
    clip_of,
    frozen,
    require_torch,
    seeded_generator,
)
from bastion.adversarial.attacks.evasion._torch import (
    _ascend,
    _batches,
    _bcast,
    _Clamp,
    _loss_and_grad,
    _mlp_ops,
    _project_onto,
    _random_start,
)
from bastion.adversarial.attacks.evasion.registry import register_gradient_attack
from bastion.models.interface import ModelAdapter

if TYPE_CHECKING:
    import torch


def _checkpoints(steps: int) -> list[int]:
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if math.ceil(q * steps) < steps})


def apgd(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    eps: float,
    norm: str = "inf",
    steps: int = 100,
    restarts: int = 1,
    rho: float = 0.75,
    seed: int = 0,
    batch_size: int | None = None,
) -> np.ndarray:
    """APGD-CE (Croce & Hein 2020): step-size-free PGD with momentum and adaptive step halving."""
    import torch

    tm = require_torch(model)
    eps, norm = check_eps(eps), check_norm(norm)
    steps, restarts = check_positive("steps", steps), check_positive("restarts", restarts)
    xs, ys = batch(tm, x, y)
    gen = seeded_generator(seed)
    clamp = _Clamp(clip_of(tm))
    ckpts = _checkpoints(steps)
    size = batch_size or tm.batch_size
    out = np.empty_like(xs)
    ops = _mlp_ops(tm)

    def proj(t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return _project_onto(t, x0, eps=eps, norm=norm, clamp=clamp)

    def ascend(x_cur: torch.Tensor, eta: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return _ascend(x_cur, x0, _bcast(eta, x_cur), grad, eps=eps, norm=norm, clamp=clamp)

    with frozen(tm.module):
        for i in _batches(xs.shape[0], size):
            x0 = torch.from_numpy(xs[i : i + size])
            y0 = torch.from_numpy(ys[i : i + size])
            n = x0.shape[0]
            found = x0.clone()
            fooled = torch.zeros(n, dtype=torch.bool)

            def track(
                xa: torch.Tensor, logits: torch.Tensor, y0: torch.Tensor = y0, found: torch.Tensor = found
            ) -> None:
                nonlocal fooled
                wrong = logits.argmax(1) != y0
                newly = wrong & ~fooled
                found[newly] = xa[newly]
                fooled = fooled | wrong

            for _ in range(restarts):
                x_cur = proj(x0 + (_random_start(x0, eps, norm, gen) if eps > 0 else 0.0), x0)
                eta = torch.full((n,), 2.0 * eps)
                f_cur, grad, logits = _loss_and_grad(tm, x_cur, y0, ops)
                track(x_cur, logits)
                x_best, f_best = x_cur.clone(), f_cur.clone()
                x_prev = x_cur
                x_cur = ascend(x_cur, eta, grad, x0)
                count = torch.zeros(n)
                f_best_ckpt = f_best.clone()
                reduced_last = torch.zeros(n, dtype=torch.bool)
                last_ckpt = 0
                for k in range(1, steps):
                    f_new, grad_new, logits = _loss_and_grad(tm, x_cur, y0, ops)
                    track(x_cur, logits)
                    count += (f_new > f_cur).float()
                    better = f_new > f_best
                    x_best[better], f_best[better] = x_cur[better], f_new[better]
                    f_cur, grad = f_new, grad_new
                    if k in ckpts:
                        cond1 = count < rho * (k - last_ckpt)
                        cond2 = (~reduced_last) & (f_best_ckpt >= f_best)
                        reduce = cond1 | cond2
                        if bool(reduce.any()):
                            eta[reduce] /= 2.0
                            x_cur[reduce] = x_best[reduce]
                            x_prev = x_prev.clone()
                            x_prev[reduce] = x_best[reduce]
                            f_cur, grad, logits = _loss_and_grad(tm, x_cur, y0, ops)
                        reduced_last, count, f_best_ckpt, last_ckpt = (
                            reduce,
                            torch.zeros(n),
                            f_best.clone(),
                            k,
                        )
                    z = ascend(x_cur, eta, grad, x0)
                    x_next = proj(x_cur + 0.75 * (z - x_cur) + 0.25 * (x_cur - x_prev), x0)
                    x_prev, x_cur = x_cur, x_next
                with torch.no_grad():
                    track(x_cur, tm.logits_tensor(x_cur))
                found[~fooled] = x_best[~fooled]
                if bool(fooled.all()):
                    break
            out[i : i + size] = found.numpy()
    return out


register_gradient_attack(
    "apgd-ce",
    apgd,
    seed_offset=1,
    options=lambda config: {"steps": config.apgd_steps} if config.apgd_steps > 0 else None,
)
