"""Torch helpers shared by the white-box evasion attacks: projections onto the ε-ball, random starts, the
loss-and-gradient step and its fast path for plain ``Linear``/activation MLPs (no autograd graph), and
channels-last memory format for convolutional models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bastion.models.adapters import TorchAdapter


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


def _project_onto(t: torch.Tensor, x0: torch.Tensor, *, eps: float, norm: str, clamp: _Clamp) -> torch.Tensor:
    """``t`` projected onto the ε-ball around ``x0``, then into the input range."""
    return clamp(x0 + _project(t - x0, eps, norm))


def _ascend(
    x: torch.Tensor,
    x0: torch.Tensor,
    step: float | torch.Tensor,
    grad: torch.Tensor,
    *,
    eps: float,
    norm: str,
    clamp: _Clamp,
) -> torch.Tensor:
    """One ascent step of size ``step`` (a number, or one per row broadcast with :func:`_bcast`) along the
    norm's steepest direction of ``grad``, projected back (the PGD and APGD update)."""
    return _project_onto(x + step * _direction(grad, norm), x0, eps=eps, norm=norm, clamp=clamp)


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
