"""The ensemble's attack registry: where an evasion attack plugs into :func:`evaluate_robustness`.

Built-in members register themselves when their module is imported (PGD, APGD-CE, Square, HopSkipJump, in
that order, by :mod:`bastion.adversarial.attacks.evasion`); the ensemble runs every registered member in
registration order. A new attack registers an :class:`EnsembleMember` with :func:`register_attack` (names are
unique: registering one twice raises, so a plug-in cannot silently replace a built-in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.adversarial.attacks.evasion.interface import AttackRun, EnsembleConfig, EnsembleRunner
from bastion.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from bastion.models.interface import ModelAdapter


@dataclass(frozen=True)
class EnsembleMember:
    """A named attack in the ensemble. ``white_box``: it needs gradients (the gradient-masking check
    compares white-box members against black-box ones); ``seed_offset`` is added to the ensemble's seed."""

    name: str
    run: EnsembleRunner
    white_box: bool
    seed_offset: int = 0


_MEMBERS: dict[str, EnsembleMember] = {}


def register_attack(member: EnsembleMember) -> EnsembleMember:
    """Add ``member`` to the ensemble (after the ones already registered)."""
    if not member.name or not member.name.replace("-", "").isalnum():
        raise InvalidInput(f"an ensemble attack needs a plain name, got {member.name!r}")
    if member.name in _MEMBERS:
        raise Conflict(f"an ensemble attack named {member.name!r} is already registered")
    _MEMBERS[member.name] = member
    return member


def register_gradient_attack(
    name: str,
    attack: Callable[..., np.ndarray],
    *,
    seed_offset: int,
    options: Callable[[EnsembleConfig], Mapping[str, Any] | None],
) -> EnsembleMember:
    """Register a white-box ``attack(model, x, y, *, eps, norm, seed, batch_size, **options)`` that returns
    adversarial inputs for every row; ``options(config)`` gives its settings, or None when disabled."""

    def run(
        model: ModelAdapter,
        x: np.ndarray,
        y: np.ndarray,
        *,
        eps: float,
        norm: str,
        config: EnsembleConfig,
        seed: int,
    ) -> AttackRun | None:
        opts = options(config)
        if opts is None:
            return None
        adv = attack(model, x, y, eps=eps, norm=norm, seed=seed, batch_size=config.batch_size, **opts)
        return AttackRun(x_adv=adv)

    return register_attack(EnsembleMember(name=name, run=run, white_box=True, seed_offset=seed_offset))


def unregister_attack(name: str) -> None:
    """Remove a registered member (for plug-ins and their tests)."""
    if _MEMBERS.pop(name, None) is None:
        raise InvalidInput(f"no ensemble attack named {name!r}")


def ensemble_attacks() -> tuple[EnsembleMember, ...]:
    """The registered members, in the order the ensemble runs them."""
    return tuple(_MEMBERS.values())


__all__ = [
    "EnsembleMember",
    "ensemble_attacks",
    "register_attack",
    "register_gradient_attack",
    "unregister_attack",
]
