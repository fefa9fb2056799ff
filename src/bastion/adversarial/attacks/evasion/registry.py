"""The ensemble's attack registry: where an evasion attack plugs into :func:`evaluate_robustness`.

Built-in members register themselves when their module is imported (PGD, APGD-CE, Square, HopSkipJump, in
that order, by :mod:`bastion.adversarial.attacks.evasion`); the ensemble runs every registered member in
registration order. A new attack registers an :class:`EnsembleMember` with :func:`register_attack` (names are
unique: registering one twice raises, so a plug-in cannot silently replace a built-in); an attack of the usual
shape registers through :func:`register_gradient_attack` or :func:`register_black_box_attack`, which wrap
it in the one runner the built-ins share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.adversarial.attacks.evasion.interface import (
    AttackRun,
    BlackBoxResult,
    EnsembleConfig,
    EnsembleRunner,
)
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


AttackOptions = Callable[["ModelAdapter", float, str, EnsembleConfig], Mapping[str, Any] | None]
"""``options(model, eps, norm, config)``: a member's keyword arguments for a run (None: it does not apply)."""


def _runner(
    attack: Callable[..., Any],
    options: AttackOptions,
    *,
    black_box: bool,
    examples: Callable[[EnsembleConfig], int] | None = None,
) -> EnsembleRunner:
    """The one :class:`EnsembleRunner` behind the built-in members:
    ``attack(model, x, y, *, seed, **options)`` on every row, or on the first ``examples(config)`` rows; a
    black-box attack returns a :class:`BlackBoxResult` (its queries are reported), a white-box one the
    adversarial inputs."""

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
        opts = options(model, eps, norm, config)
        if opts is None:
            return None
        rows = None if examples is None else np.arange(min(examples(config), x.shape[0]))
        xs, ys = (x, y) if rows is None else (x[rows], y[rows])
        out = attack(model, xs, ys, seed=seed, **opts)
        if black_box:
            res: BlackBoxResult = out
            return AttackRun(x_adv=res.x_adv, rows=rows, queries=res.queries)
        return AttackRun(x_adv=out, rows=rows)

    return run


def register_gradient_attack(
    name: str,
    attack: Callable[..., np.ndarray],
    *,
    seed_offset: int,
    options: Callable[[EnsembleConfig], Mapping[str, Any] | None],
) -> EnsembleMember:
    """Register a white-box ``attack(model, x, y, *, eps, norm, seed, batch_size, **options)`` that returns
    adversarial inputs for every row; ``options(config)`` gives its settings, or None when disabled."""

    def with_budget(
        model: ModelAdapter, eps: float, norm: str, config: EnsembleConfig
    ) -> Mapping[str, Any] | None:
        opts = options(config)
        if opts is None:
            return None
        return {"eps": eps, "norm": norm, "batch_size": config.batch_size, **opts}

    run = _runner(attack, with_budget, black_box=False)
    return register_attack(EnsembleMember(name=name, run=run, white_box=True, seed_offset=seed_offset))


def register_black_box_attack(
    name: str,
    attack: Callable[..., BlackBoxResult],
    *,
    seed_offset: int,
    options: AttackOptions,
    examples: Callable[[EnsembleConfig], int] | None = None,
) -> EnsembleMember:
    """Register a black-box ``attack(model, x, y, *, seed, **options(model, eps, norm, config))`` that returns
    a :class:`BlackBoxResult`; ``examples(config)``: attack only that many first rows (default: all)."""
    run = _runner(attack, options, black_box=True, examples=examples)
    return register_attack(EnsembleMember(name=name, run=run, white_box=False, seed_offset=seed_offset))


def unregister_attack(name: str) -> None:
    """Remove a registered member (for plug-ins and their tests)."""
    if _MEMBERS.pop(name, None) is None:
        raise InvalidInput(f"no ensemble attack named {name!r}")


def ensemble_attacks() -> tuple[EnsembleMember, ...]:
    """The registered members, in the order the ensemble runs them."""
    return tuple(_MEMBERS.values())


__all__ = [
    "AttackOptions",
    "EnsembleMember",
    "ensemble_attacks",
    "register_attack",
    "register_black_box_attack",
    "register_gradient_attack",
    "unregister_attack",
]
