"""Private helpers shared by the attacks and defences: torch access, image views, validation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter, check_input, check_labels

if TYPE_CHECKING:
    import torch

    from bastion.models.adapters import TorchAdapter

NORMS: tuple[str, ...] = ("inf", "l2")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise InvalidInput(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def check_eps(eps: float) -> float:
    value = float(eps)
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"eps must be a finite number >= 0, got {eps!r}")
    return value


def check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) < 1:
        raise InvalidInput(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def require_torch(model: ModelAdapter) -> TorchAdapter:
    """The model as a white-box torch adapter, or a clear error."""
    from bastion.models.adapters import TorchAdapter

    if not isinstance(model, TorchAdapter):
        raise InvalidInput(
            f"this attack needs gradients: a TorchAdapter, got {type(model).__name__}",
            hint="black-box models can be audited with the square and hopskipjump attacks",
        )
    return model


def batch(model: ModelAdapter, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 inputs and int64 labels for ``model``."""
    xa = check_input(x, model.input_shape)
    return xa, check_labels(y, xa.shape[0], model.n_classes)


def clip_of(model: ModelAdapter) -> tuple[float, float] | None:
    clip = getattr(model, "clip_values", None)
    return None if clip is None else (float(clip[0]), float(clip[1]))


def clip_np(x: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    return x if clip is None else np.clip(x, clip[0], clip[1])


def image_view(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, height, width) to treat one example as an image.

    ``(C, H, W)`` stays; ``(H, W)`` is one channel; a flat vector whose length is a perfect square (digits:
    64 = 8×8) is a square image; any other vector is a ``1 × D`` strip.
    """
    if len(input_shape) == 3:
        return (input_shape[0], input_shape[1], input_shape[2])
    if len(input_shape) == 2:
        return (1, input_shape[0], input_shape[1])
    d = int(np.prod(input_shape))
    side = math.isqrt(d)
    if side * side == d and side > 1:
        return (1, side, side)
    return (1, 1, d)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration (input gradients only: faster attacks)."""
    was_training = module.training
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(was_training)


def penultimate(model: TorchAdapter, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Activations feeding the model's last ``nn.Linear`` layer (what backdoor detectors look at)."""
    import torch

    last = None
    for module in model.module.modules():
        if isinstance(module, torch.nn.Linear):
            last = module
    if last is None:
        raise InvalidInput("the model has no nn.Linear layer to read activations from")
    captured: list[torch.Tensor] = []

    def hook(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].detach().flatten(1).cpu())

    xa = check_input(x, model.input_shape)
    handle = last.register_forward_pre_hook(hook)
    try:
        with frozen(model.module), torch.no_grad():
            for i in range(0, xa.shape[0], batch_size):
                model.logits_tensor(model.to_tensor(xa[i : i + batch_size]))
    finally:
        handle.remove()
    return torch.cat(captured).numpy().astype(np.float32)


def seeded_generator(seed: int) -> torch.Generator:
    import torch

    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen
