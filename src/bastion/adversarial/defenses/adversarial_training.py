"""PGD adversarial training (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018): every mini-batch is replaced by PGD examples crafted against the current weights.

Deviation: optionally a fraction ``clean_fraction`` of each batch stays clean (0 by default, as in Madry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.adversarial._common import batch, check_eps, check_norm, check_positive
from bastion.adversarial.attacks.evasion import accuracy, pgd
from bastion.errors import InvalidInput
from bastion.models.adapters import TorchAdapter


@dataclass(frozen=True)
class AdversarialTrainingResult:
    eps: float
    norm: str
    epochs: int
    steps: int
    clean_accuracy_train: float


def adversarial_training(
    *,
    model: TorchAdapter,
    x: Any,
    y: Any,
    eps: float,
    norm: str = "inf",
    steps: int = 7,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    clean_fraction: float = 0.0,
    seed: int = 0,
) -> AdversarialTrainingResult:
    """Train ``model.module`` in place on PGD(``eps``, ``steps``) examples with Adam."""
    import torch

    if not isinstance(model, TorchAdapter):
        raise InvalidInput("adversarial training needs a TorchAdapter")
    eps, norm = check_eps(eps), check_norm(norm)
    steps, epochs = check_positive("steps", steps), check_positive("epochs", epochs)
    if not 0 <= clean_fraction < 1:
        raise InvalidInput("clean_fraction must be in [0, 1)")
    xs, ys = batch(model, x, y)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    opt = torch.optim.Adam(model.module.parameters(), lr=lr)
    n = xs.shape[0]
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).numpy()
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = xs[idx], ys[idx]
            n_clean = int(clean_fraction * len(idx))
            x_adv = pgd(model, xb, yb, eps=eps, norm=norm, steps=steps, seed=seed + epoch * 7919 + i)
            if n_clean:
                x_adv[:n_clean] = xb[:n_clean]
            model.module.train()
            out = model.module(model.to_tensor(x_adv))
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(yb))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.module.eval()
    return AdversarialTrainingResult(
        eps=eps, norm=norm, epochs=epochs, steps=steps, clean_accuracy_train=accuracy(model, xs, ys)
    )


__all__ = ["AdversarialTrainingResult", "adversarial_training"]
