"""FGSM (Goodfellow et al., ICLR 2015) and PGD (Madry et al., ICLR 2018), L∞ and L2, with random restarts.

Deviation from the paper: every iterate is checked and the first misclassified one is kept (never weaker than
returning the last iterate, as ART does)."""

from __future__ import annotations

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
    _channels_last,
    _Clamp,
    _loss_and_grad,
    _mlp_grad,
    _mlp_ops,
    _mlp_weights,
    _random_start,
)
from bastion.adversarial.attacks.evasion.registry import register_gradient_attack
from bastion.models.interface import ModelAdapter

if TYPE_CHECKING:
    import torch

    from bastion.models.adapters import TorchAdapter


def fgsm(model: ModelAdapter, x: Any, y: Any, *, eps: float, norm: str = "inf") -> np.ndarray:
    """One signed (L∞) or normalised (L2) gradient step of size ``eps``. Returns the adversarial inputs."""
    return pgd(model, x, y, eps=eps, norm=norm, steps=1, step_size=eps, restarts=1, random_init=False)


def pgd(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    eps: float,
    norm: str = "inf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_init: bool = True,
    seed: int = 0,
    batch_size: int | None = None,
) -> np.ndarray:
    """Projected gradient descent on the cross-entropy loss inside the ``eps`` ball (``norm``: inf or l2).

    ``step_size`` defaults to ``2.5 * eps / steps``. With ``restarts > 1`` each restart starts from a new
    random point. Returns adversarial inputs (float32, same shape as ``x``); an example never misclassified
    gets the last iterate.
    """
    import torch

    tm = require_torch(model)
    eps, norm = check_eps(eps), check_norm(norm)
    steps, restarts = check_positive("steps", steps), check_positive("restarts", restarts)
    alpha = float(step_size) if step_size is not None else 2.5 * eps / steps
    xs, ys = batch(tm, x, y)
    gen = seeded_generator(seed)
    clamp = _Clamp(clip_of(tm))
    size = batch_size or tm.batch_size
    out = np.empty_like(xs)
    ops = _mlp_ops(tm)
    weights = _mlp_weights(ops) if ops is not None else None
    with frozen(tm.module), _channels_last(tm.module):
        for i in _batches(xs.shape[0], size):
            x0 = torch.from_numpy(xs[i : i + size])
            y0 = torch.from_numpy(ys[i : i + size])
            best = x0.clone()
            fooled = torch.zeros(x0.shape[0], dtype=torch.bool)
            lower, upper = x0 - eps, x0 + eps
            if clamp.clip is not None:
                lower, upper = lower.clamp(min=clamp.clip[0]), upper.clamp(max=clamp.clip[1])
            for r in range(restarts):
                start = (
                    _random_start(x0, eps, norm, gen) if (random_init and eps > 0) else torch.zeros_like(x0)
                )
                _pgd_run(
                    tm,
                    weights,
                    _PgdState(x0, y0, lower, upper, start, best, fooled, tm.n_classes),
                    eps=eps,
                    norm=norm,
                    alpha=alpha,
                    steps=steps,
                    clamp=clamp,
                    last=r == restarts - 1,
                )
                if bool(fooled.all()):
                    break
            out[i : i + size] = best.numpy()
    return out


class _PgdState:
    """One PGD run's working set. A row's result is fixed once it is misclassified (the first misclassified
    iterate is kept), so finished rows are dropped from the batch: every step costs only the rows still
    standing. Results are the same as attacking every row for every step."""

    def __init__(
        self,
        x0: torch.Tensor,
        y0: torch.Tensor,
        lower: torch.Tensor,
        upper: torch.Tensor,
        start: torch.Tensor,
        best: torch.Tensor,
        fooled: torch.Tensor,
        n_classes: int,
    ) -> None:
        import torch

        self.best, self.fooled = best, fooled
        self.idx = torch.nonzero(~fooled).squeeze(1)
        if self.idx.numel() == x0.shape[0]:
            self.x0, self.y, self.lower, self.upper, xa = x0, y0, lower, upper, start
        else:
            self.x0, self.y, self.lower, self.upper, xa = (
                t.index_select(0, self.idx) for t in (x0, y0, lower, upper, start)
            )
        self.xa = xa.add_(self.x0)
        self.onehot_t = torch.nn.functional.one_hot(self.y, n_classes).to(x0.dtype).t().contiguous()
        self.live = torch.ones(self.idx.numel(), dtype=torch.bool)  # False: fooled, not yet dropped
        self.n_dead = 0  # rows of the working set already fooled (live False)

    def retire(self, pred: torch.Tensor) -> bool:
        """Record rows first misclassified (predicted class ``pred``) at the current iterate. True when no
        row is left to attack."""
        import torch

        newly = pred != self.y
        if self.n_dead:
            newly.logical_and_(self.live)
        hit = torch.nonzero(newly).squeeze(1)
        if hit.numel() == 0:
            return False
        rows = self.idx.index_select(0, hit)
        self.best.index_copy_(0, rows, self.xa.index_select(0, hit))
        self.fooled.index_fill_(0, rows, True)
        self.live.index_fill_(0, hit, False)
        self.n_dead += hit.numel()
        return self.n_dead == self.idx.numel()

    def compact(self, *, with_x0: bool) -> None:
        """Drop finished rows once they are a sixteenth of the working set (between steps)."""
        import torch

        n = self.idx.numel()
        if self.n_dead * 16 < n:
            return
        keep = torch.nonzero(self.live).squeeze(1)
        self.idx, self.y, self.lower, self.upper, self.xa = (
            t.index_select(0, keep) for t in (self.idx, self.y, self.lower, self.upper, self.xa)
        )
        if with_x0:
            self.x0 = self.x0.index_select(0, keep)
        self.onehot_t = self.onehot_t.index_select(1, keep)
        self.live = torch.ones(keep.numel(), dtype=torch.bool)
        self.n_dead = 0


def _pgd_run(
    tm: TorchAdapter,
    weights: list[tuple[torch.Tensor, torch.Tensor | None] | None] | None,
    st: _PgdState,
    *,
    eps: float,
    norm: str,
    alpha: float,
    steps: int,
    clamp: _Clamp,
    last: bool,
) -> None:
    """One restart of PGD over the rows of ``st``; updates ``st.best`` and ``st.fooled`` in place."""
    import torch

    if st.idx.numel() == 0:
        return
    with torch.no_grad():  # the update is never differentiated; autograd is enabled for the gradient only
        st.xa = clamp(st.xa)
        for _ in range(steps):
            if weights is not None:
                grad, logits_t = _mlp_grad(weights, st.xa, st.onehot_t)
                pred = logits_t.max(0)[1]
            else:
                with torch.enable_grad():
                    _, grad, logits = _loss_and_grad(tm, st.xa, st.y)
                pred = logits.argmax(1)
            if st.retire(pred):
                return
            if norm == "inf":  # ε-ball ∩ input range is one box: projection is a single clamp
                st.xa.add_(grad.sign_(), alpha=alpha)
                torch.clamp(st.xa, st.lower, st.upper, out=st.xa)
            else:
                st.xa = _ascend(st.xa, st.x0, alpha, grad, eps=eps, norm=norm, clamp=clamp)
            st.compact(with_x0=norm != "inf")
        if st.retire(tm.logits_tensor(st.xa).argmax(1)) or not last:
            return
        left = torch.nonzero(st.live).squeeze(1)
        st.best.index_copy_(0, st.idx.index_select(0, left), st.xa.index_select(0, left))


register_gradient_attack(
    "pgd",
    pgd,
    seed_offset=0,
    options=lambda config: (
        {"steps": config.pgd_steps, "restarts": config.pgd_restarts} if config.pgd_steps > 0 else None
    ),
)
