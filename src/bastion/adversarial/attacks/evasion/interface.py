"""The evasion attacks' plug-in point: what an attack hands the robustness ensemble.

An ensemble member is a function ``run(model, x, y, *, eps, norm, config, seed)`` that returns an
:class:`AttackRun` (adversarial inputs for all rows, or for the ``rows`` it attacked, and the queries it
spent when it is a black-box attack), or ``None`` when it does not apply (no gradients, a norm it does not
support, disabled by ``config``). The contract every member is tested against
(``tests/adversarial/test_evasion_registry.py``): it never modifies ``x``, returns ``float32`` inputs of the
rows' shape, is deterministic for a given ``seed``, and white-box members only run on models with gradients.
The ensemble counts an example as fooled only when the returned input is within ``eps`` (checked by the
ensemble, not trusted from the member).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from bastion.models.interface import ModelAdapter


@dataclass(frozen=True)
class BlackBoxResult:
    """Adversarial inputs of a black-box attack and the number of model queries it spent."""

    x_adv: np.ndarray = field(repr=False)
    queries: int


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
class AttackRun:
    """One member's output in the ensemble: adversarial inputs for every row (``rows`` None) or for ``rows``,
    and the model queries it spent (black-box attacks; None for white-box ones)."""

    x_adv: np.ndarray = field(repr=False)
    rows: np.ndarray | None = field(default=None, repr=False)
    queries: int | None = None


class EnsembleRunner(Protocol):
    def __call__(
        self,
        model: ModelAdapter,
        x: np.ndarray,
        y: np.ndarray,
        *,
        eps: float,
        norm: str,
        config: EnsembleConfig,
        seed: int,
    ) -> AttackRun | None: ...


__all__ = ["AttackRun", "BlackBoxResult", "EnsembleConfig", "EnsembleRunner"]
