"""Evasion attacks, torch-native and batched, plus an AutoAttack-style ensemble.

* :func:`fgsm` — Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.
* :func:`pgd` — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018;
  L∞ and L2, random restarts. Deviation: every iterate is checked and the first misclassified one is kept
  (never weaker than returning the last iterate, as ART does).
* :func:`apgd` — APGD-CE of Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", ICML 2020: momentum 0.75, step size halved at the checkpoints
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` when fewer than ρ = 0.75 of the steps since the last
  checkpoint raised the loss or when the best loss did not move.
* :func:`square` — Square Attack (L∞, score-based), Andriushchenko et al., ECCV 2020, with the margin loss on
  probabilities and AutoAttack's ``p`` schedule; a flat input whose length is a square is viewed as an image.
* :func:`hop_skip_jump` — HopSkipJumpAttack (label-only), Chen, Jordan & Wainwright, IEEE S&P 2020, L2 and L∞.
* :func:`evaluate_robustness` — the ensemble: each example counts as robust only if it survives every attack
  (worst case per example), with a gradient-masking warning when black-box attacks beat white-box ones.

White-box attacks need a :class:`~bastion.models.adapters.TorchAdapter`; black-box ones take any
:class:`~bastion.models.interface.ModelAdapter`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_eps,
    check_norm,
    check_positive,
    clip_np,
    clip_of,
    frozen,
    image_view,
    require_torch,
    seeded_generator,
)
from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter, supports_gradients

if TYPE_CHECKING:
    import torch

    from bastion.models.adapters import TorchAdapter


# --------------------------------------------------------------------------------------------- torch helpers
def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * _bcast((eps / n).clamp(max=1.0), delta)


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return grad.sign()
    n = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / _bcast(n, grad)


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    import torch

    if norm == "inf":
        return (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    d = torch.randn(x.shape, generator=gen)
    d = d / _bcast(d.flatten(1).norm(dim=1).clamp_min(1e-12), d)
    dim = x[0].numel()
    r = torch.rand(x.shape[0], generator=gen) ** (1.0 / dim) * eps
    return d * _bcast(r, d)


class _Clamp:
    def __init__(self, clip: tuple[float, float] | None) -> None:
        self.clip = clip

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.clip is None else t.clamp(self.clip[0], self.clip[1])


def _has_hooks(module: Any) -> bool:
    """True when a module carries any forward/backward hook or an instance-level ``forward`` override."""
    hook_dicts = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return any(getattr(module, name, None) for name in hook_dicts) or "forward" in vars(module)


def _global_hooks() -> bool:
    from torch.nn.modules import module as torch_module

    return any(
        getattr(torch_module, name, None)
        for name in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    )


def _mlp_ops(model: Any) -> list[tuple[str, Any]] | None:
    """The layers of a plain ``Sequential`` of (Flatten,) Linear and ReLU, else None (use autograd).

    The hand-written pass computes exactly what ``model.logits_tensor`` would only when nothing can change
    that function: a :class:`TorchAdapter` whose ``logits_tensor`` is not overridden, a module of exactly
    these types (no subclass: a defended, LoRA-style or normalising layer is a subclass with its own
    ``forward``), no forward/backward hook on any layer or globally, and an output width equal to the
    number of classes. Anything else takes the autograd path, which runs the model itself.
    """
    import torch

    from bastion.models.adapters import TorchAdapter

    if type(model).logits_tensor is not TorchAdapter.logits_tensor:
        return None
    module = model.module
    if type(module) is not torch.nn.Sequential or _has_hooks(module) or _global_hooks():
        return None
    ops: list[tuple[str, Any]] = []
    for i, layer in enumerate(module):
        if _has_hooks(layer):
            return None
        kind = type(layer)
        if kind is torch.nn.Flatten and i == 0 and (layer.start_dim, layer.end_dim) == (1, -1):
            continue
        if kind is torch.nn.Linear:
            ops.append(("linear", layer))
        elif kind is torch.nn.ReLU and ops and ops[-1][0] == "linear":
            ops.append(("relu", layer))
        else:
            return None
    if not ops or ops[-1][0] != "linear" or ops[-1][1].out_features != model.n_classes:
        return None
    return ops


def _mlp_loss_and_grad(
    ops: list[tuple[str, Any]], xa: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-written forward and backward pass for a Linear/ReLU stack: the same numbers as autograd without
    its bookkeeping, which dominates the cost of a PGD step on small models."""
    import torch

    with torch.no_grad():
        h = xa.flatten(1)
        saved: list[torch.Tensor] = []
        for kind, layer in ops:
            if kind == "linear":
                h = torch.nn.functional.linear(h, layer.weight, layer.bias)
            else:
                h = torch.relu(h)
                saved.append(h > 0)
        logits = h
        logp = torch.log_softmax(logits, dim=1)
        idx = y.unsqueeze(1)
        losses = -logp.gather(1, idx).squeeze(1)
        g = logp.exp().scatter_add_(1, idx, torch.full(idx.shape, -1.0, dtype=logp.dtype))
        for kind, layer in reversed(ops):
            g = g @ layer.weight if kind == "linear" else g * saved.pop()
        return losses, g.view_as(xa), logits


def _mlp_weights(ops: list[tuple[str, Any]]) -> list[tuple[torch.Tensor, torch.Tensor | None] | None]:
    """Detached (weight, bias) per Linear and None per ReLU: read once per attack, not once per step. The
    last bias is a column: the output layer runs transposed (see :func:`_mlp_grad`)."""
    weights = [
        (layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
        if kind == "linear"
        else None
        for kind, layer in ops
    ]
    w, b = weights[-1]  # type: ignore[misc]
    weights[-1] = (w, None if b is None else b.unsqueeze(1).contiguous())
    return weights


def _mlp_grad(
    weights: list[tuple[torch.Tensor, torch.Tensor | None] | None], xa: torch.Tensor, onehot_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input gradient of the summed cross-entropy and the *transposed* logits (classes × rows) for a
    Linear/ReLU stack (call under ``torch.no_grad``): softmax minus one-hot, back through the layers, in
    place where possible. The output layer, its softmax and its backward run classes-major: with few classes
    that layout is 2-3× faster on CPU than rows-major (same values up to float rounding)."""
    import torch

    h = xa.flatten(1)
    acts: list[torch.Tensor] = []
    for wb in weights[:-1]:
        if wb is None:
            h = h.clamp_min_(0.0)
            acts.append(h)
        else:
            h = torch.nn.functional.linear(h, wb[0], wb[1])
    w, b = weights[-1]  # type: ignore[misc]
    logits_t = torch.mm(w, h.t()) if b is None else torch.addmm(b, w, h.t())
    g = torch.softmax(logits_t, dim=0).sub_(onehot_t).t().mm(w)
    for wb in reversed(weights[:-1]):
        g = g.mm(wb[0]) if wb is not None else torch.ops.aten.threshold_backward(g, acts.pop(), 0.0)
    return g.view_as(xa), logits_t


@contextlib.contextmanager
def _channels_last(module: torch.nn.Module) -> Iterator[None]:
    """4-D (conv) weights in channels-last layout for the duration: oneDNN's faster convolution path on
    CPU (≈ 1.5× per PGD step on a small CNN). Same values; the original tensors are put back after."""
    import torch

    saved = [(p, p.data) for p in module.parameters() if p.ndim == 4]
    try:
        for p, data in saved:
            p.data = data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for p, data in saved:
            p.data = data


def _loss_and_grad(
    model: TorchAdapter, xa: torch.Tensor, y: torch.Tensor, ops: list[tuple[str, Any]] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy, its input gradient and the logits (one forward and backward pass)."""
    import torch

    if ops is not None:
        return _mlp_loss_and_grad(ops, xa, y)
    xa = xa.detach().requires_grad_(True)
    logits = model.logits_tensor(xa)
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    (grad,) = torch.autograd.grad(losses.sum(), xa)
    return losses.detach(), grad.detach(), logits.detach()


def _batches(n: int, size: int) -> range:
    return range(0, n, size)


# ------------------------------------------------------------------------------------------------- FGSM / PGD
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
                st.xa = clamp(st.x0 + _project(st.xa + alpha * _direction(grad, norm) - st.x0, eps, norm))
            st.compact(with_x0=norm != "inf")
        if st.retire(tm.logits_tensor(st.xa).argmax(1)) or not last:
            return
        left = torch.nonzero(st.live).squeeze(1)
        st.best.index_copy_(0, st.idx.index_select(0, left), st.xa.index_select(0, left))


# ---------------------------------------------------------------------------------------------------- APGD-CE
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
        return clamp(x0 + _project(t - x0, eps, norm))

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
                x_cur = proj(x_cur + _bcast(eta, x_cur) * _direction(grad, norm), x0)
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
                    z = proj(x_cur + _bcast(eta, x_cur) * _direction(grad, norm), x0)
                    x_next = proj(x_cur + 0.75 * (z - x_cur) + 0.25 * (x_cur - x_prev), x0)
                    x_prev, x_cur = x_cur, x_next
                with torch.no_grad():
                    track(x_cur, tm.logits_tensor(x_cur))
                found[~fooled] = x_best[~fooled]
                if bool(fooled.all()):
                    break
            out[i : i + size] = found.numpy()
    return out


# ----------------------------------------------------------------------------------------------------- Square
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


@dataclass(frozen=True)
class BlackBoxResult:
    """Adversarial inputs of a black-box attack and the number of model queries it spent."""

    x_adv: np.ndarray = field(repr=False)
    queries: int


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


# ------------------------------------------------------------------------------------------------ HopSkipJump
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


# ------------------------------------------------------------------------------------------------- Ensemble
def accuracy(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``."""
    return float((model.predict(x) == np.asarray(y)).mean())


def _within(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    d = (x_adv - x).reshape(x.shape[0], -1)
    dist = np.abs(d).max(axis=1) if norm == "inf" else np.linalg.norm(d, axis=1)
    return np.asarray(dist <= eps * (1 + 1e-4) + 1e-6)


@dataclass(frozen=True)
class EnsembleConfig:
    """Which attacks the ensemble runs and how hard. Zero steps/queries/iterations disables an attack."""

    pgd_steps: int = 40
    pgd_restarts: int = 1
    apgd_steps: int = 100
    square_queries: int = 1000
    hsj_iterations: int = 10
    hsj_examples: int = 20
    batch_size: int | None = None


@dataclass(frozen=True)
class EnsembleResult:
    """Robust accuracy per attack and in the worst case per example, with a gradient-masking warning."""

    eps: float
    norm: str
    n_examples: int
    clean_accuracy: float
    robust_accuracy: float
    per_attack: dict[str, float]
    queries: dict[str, int]
    masking_warning: str | None
    x_adv: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "norm": self.norm,
            "n_examples": self.n_examples,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "per_attack": dict(self.per_attack),
            "queries": dict(self.queries),
            "masking_warning": self.masking_warning,
        }


WHITE_BOX = ("pgd", "apgd-ce")
BLACK_BOX = ("square", "hopskipjump")


def evaluate_robustness(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    eps: float,
    norm: str = "inf",
    config: EnsembleConfig | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EnsembleResult:
    """Run the ensemble at one ``eps``; an example is robust only if every attack fails on it.

    White-box attacks (PGD, APGD-CE) run when the model has gradients; Square when it returns scores;
    HopSkipJump (label-only) on the first ``hsj_examples`` examples, counted only within ``eps``.
    """
    cfg = config or EnsembleConfig()
    eps, norm = check_eps(eps), check_norm(norm)
    xs, ys = batch(model, x, y)
    correct = model.predict(xs) == ys
    robust_each: dict[str, np.ndarray] = {}
    queries: dict[str, int] = {}
    worst = xs.copy()
    alive = correct.copy()

    def record(name: str, x_adv: np.ndarray, rows: np.ndarray | None = None) -> None:
        idx = np.arange(xs.shape[0]) if rows is None else rows
        fooled = (model.predict(x_adv) != ys[idx]) & _within(x_adv, xs[idx], eps, norm)
        robust = correct.copy() if rows is None else correct[idx].copy()
        robust &= ~fooled
        robust_each[name] = robust
        newly = alive[idx] & fooled
        worst[idx[newly]] = x_adv[newly]
        alive[idx[fooled]] = False
        if progress is not None:
            progress(name)

    white = supports_gradients(model) and hasattr(model, "logits_tensor")
    if white and cfg.pgd_steps > 0:
        record(
            "pgd",
            pgd(
                model,
                xs,
                ys,
                eps=eps,
                norm=norm,
                steps=cfg.pgd_steps,
                restarts=cfg.pgd_restarts,
                seed=seed,
                batch_size=cfg.batch_size,
            ),
        )
    if white and cfg.apgd_steps > 0:
        record(
            "apgd-ce",
            apgd(
                model,
                xs,
                ys,
                eps=eps,
                norm=norm,
                steps=cfg.apgd_steps,
                seed=seed + 1,
                batch_size=cfg.batch_size,
            ),
        )
    if cfg.square_queries > 0 and norm == "inf" and not getattr(model, "label_only", False):
        res = square(model, xs, ys, eps=eps, queries=cfg.square_queries, seed=seed + 2)
        queries["square"] = res.queries
        record("square", res.x_adv)
    if cfg.hsj_iterations > 0 and cfg.hsj_examples > 0:
        rows = np.arange(min(cfg.hsj_examples, xs.shape[0]))
        res = hop_skip_jump(
            model, xs[rows], ys[rows], norm=norm, iterations=cfg.hsj_iterations, seed=seed + 3
        )
        queries["hopskipjump"] = res.queries
        record("hopskipjump", res.x_adv, rows)
    if not robust_each:
        raise InvalidInput("no attack could run on this model with this configuration")
    per_attack = {name: float(r.mean()) for name, r in robust_each.items()}
    warning = _masking_warning(robust_each)
    return EnsembleResult(
        eps=eps,
        norm=norm,
        n_examples=int(xs.shape[0]),
        clean_accuracy=float(correct.mean()),
        robust_accuracy=float(alive.mean()),
        per_attack=per_attack,
        queries=queries,
        masking_warning=warning,
        x_adv=worst,
    )


def _masking_warning(robust_each: dict[str, np.ndarray]) -> str | None:
    """Warn when a black-box attack breaks examples that every white-box attack left standing."""
    white = [robust_each[n] for n in WHITE_BOX if n in robust_each]
    if not white:
        return None
    for name in BLACK_BOX:
        if name not in robust_each:
            continue
        bb = robust_each[name]
        wb = np.logical_and.reduce([w[: bb.shape[0]] for w in white])
        beaten = int((wb & ~bb).sum())
        if beaten > max(1, int(0.01 * bb.shape[0])):
            return (
                f"possible gradient masking: the black-box {name} attack broke {beaten} example(s) that "
                "every white-box attack left standing; white-box robust accuracy overstates robustness"
            )
    return None


def accuracy_vs_eps(
    model: ModelAdapter,
    x: Any,
    y: Any,
    *,
    eps_values: Sequence[float],
    norm: str = "inf",
    steps: int = 20,
    square_queries: int = 300,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Robust accuracy at each ``eps`` under PGD (white box) or Square (score-based black box)."""
    xs, ys = batch(model, x, y)
    white = hasattr(model, "logits_tensor")
    points = []
    for eps in eps_values:
        if eps == 0:
            points.append((0.0, accuracy(model, xs, ys)))
            continue
        if white:
            x_adv = pgd(model, xs, ys, eps=eps, norm=norm, steps=steps, seed=seed)
        else:
            x_adv = square(model, xs, ys, eps=eps, queries=square_queries, seed=seed).x_adv
        points.append((float(eps), accuracy(model, x_adv, ys)))
    return points


__all__ = [
    "BlackBoxResult",
    "EnsembleConfig",
    "EnsembleResult",
    "accuracy",
    "accuracy_vs_eps",
    "apgd",
    "evaluate_robustness",
    "fgsm",
    "hop_skip_jump",
    "pgd",
    "square",
]
