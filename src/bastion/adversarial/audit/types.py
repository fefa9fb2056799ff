"""The audit's data: budgets (how hard each family works), the target, the per-family and whole results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial.loading import Trainer
from bastion.models.interface import ModelAdapter

Progress = Callable[[str, float, str], None]


@dataclass(frozen=True)
class AuditBudget:
    """How hard each family works. ``quick`` fits a CI job; ``thorough`` is for a release decision."""

    name: str
    n_eval: int
    eps_grid: tuple[float, ...]
    ref_eps: float
    pgd_steps: int
    pgd_restarts: int
    apgd_steps: int
    square_queries: int
    hsj_iterations: int
    hsj_examples: int
    n_shadows: int
    mia_per_side: int
    shadow_epochs: int
    extraction_budgets: tuple[int, ...]
    extraction_strategies: tuple[str, ...]
    adaptive_steps: int
    poison_rate: float = 0.1
    shadow_pool: int = 20_000
    """Most rows LiRA's shadows draw their random halves from (cost: n_shadows trainings on half of it)."""


BUDGETS: Mapping[str, AuditBudget] = {
    "quick": AuditBudget(
        name="quick",
        n_eval=100,
        eps_grid=(0.0, 0.05, 0.1, 0.2),
        ref_eps=0.1,
        pgd_steps=10,
        pgd_restarts=1,
        apgd_steps=20,
        square_queries=200,
        hsj_iterations=5,
        hsj_examples=5,
        n_shadows=4,
        mia_per_side=150,
        shadow_epochs=20,
        shadow_pool=4_000,
        extraction_budgets=(100, 300),
        extraction_strategies=("random", "knockoff"),
        adaptive_steps=20,
    ),
    "standard": AuditBudget(
        name="standard",
        n_eval=500,
        eps_grid=(0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3),
        ref_eps=0.1,
        pgd_steps=40,
        pgd_restarts=1,
        apgd_steps=100,
        square_queries=1000,
        hsj_iterations=10,
        hsj_examples=20,
        n_shadows=16,
        mia_per_side=500,
        shadow_epochs=40,
        extraction_budgets=(100, 300, 1000),
        extraction_strategies=("random", "knockoff", "jacobian", "jacobian-random", "mixup", "adaptive"),
        adaptive_steps=100,
    ),
    "thorough": AuditBudget(
        name="thorough",
        n_eval=100_000,
        eps_grid=(0.0, 0.0125, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3),
        ref_eps=0.1,
        pgd_steps=100,
        pgd_restarts=5,
        apgd_steps=200,
        square_queries=5000,
        hsj_iterations=40,
        hsj_examples=100,
        n_shadows=64,
        mia_per_side=100_000,
        shadow_epochs=60,
        shadow_pool=400_000,
        extraction_budgets=(100, 300, 1000, 3000, 10000),
        extraction_strategies=(
            "random",
            "bucket",
            "knockoff",
            "jacobian",
            "jacobian-random",
            "mixup",
            "adaptive",
        ),
        adaptive_steps=200,
    ),
}


@dataclass(frozen=True)
class AuditTarget:
    """What is audited. ``x``/``y`` are held-out rows; ``x_train``/``y_train`` the model's training rows
    (members) when known; ``trainer(x, y, seed)`` trains another model like it (shadows, poisoning)."""

    model: ModelAdapter
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    x_train: np.ndarray | None = field(default=None, repr=False)
    y_train: np.ndarray | None = field(default=None, repr=False)
    trainer: Trainer | None = field(default=None, repr=False)
    description: Mapping[str, Any] = field(default_factory=dict)
    # the clean model behind a defended endpoint, when the auditor holds it: the extraction family then
    # reports the copy's agreement with it beside its agreement with the endpoint's (defended) answers
    reference: ModelAdapter | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SectionResult:
    """One attack family's outcome (JSON: parameters, metrics, seed, grade, curves, notes, warnings).

    ``attack`` says in plain words what the attack achieved with no defence; ``defence`` what the defence
    bastion measured against it changed (empty when none was measured)."""

    family: str
    status: str
    seed: int
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    grade: str | None = None
    reason: str = ""
    curves: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    attack: str = ""
    defence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "status": self.status,
            "seed": self.seed,
            "parameters": dict(self.parameters),
            "metrics": dict(self.metrics),
            "grade": self.grade,
            "reason": self.reason,
            "attack": self.attack,
            "defence": self.defence,
            "curves": dict(self.curves),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class AuditReport:
    """The whole audit: per-family sections, the overall grade (A–F, or ``incomplete`` when a family was
    skipped or not requested) and its reasons."""

    created: str
    bastion_version: str
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    budget: str
    seed: int
    sections: Mapping[str, SectionResult]
    grade: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "bastion-audit",
            "format_version": 2,
            "created": self.created,
            "bastion_version": self.bastion_version,
            "model": dict(self.model),
            "data": dict(self.data),
            "budget": self.budget,
            "seed": self.seed,
            "sections": {k: v.to_dict() for k, v in self.sections.items()},
            "grade": self.grade,
            "reasons": list(self.reasons),
        }

    def metric(self, family: str, name: str) -> Any:
        sec = self.sections.get(family)
        return None if sec is None else sec.metrics.get(name)

    def summary(self) -> dict[str, Any]:
        """A compact record for the catalog (vault annotation)."""
        return {
            "created": self.created,
            "budget": self.budget,
            "seed": self.seed,
            "grade": self.grade,
            "reasons": list(self.reasons),
            "families": {
                k: {"status": v.status, "grade": v.grade, "metrics": scalars(v.metrics)}
                for k, v in self.sections.items()
            },
        }


def scalars(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if isinstance(v, int | float | str | bool) or v is None}


def range_of(model: ModelAdapter, x: np.ndarray) -> tuple[float, float]:
    clip = getattr(model, "clip_values", None)
    if clip is not None:
        return float(clip[0]), float(clip[1])
    return float(x.min()), float(x.max())


__all__ = [
    "BUDGETS",
    "AuditBudget",
    "AuditReport",
    "AuditTarget",
    "Progress",
    "SectionResult",
    "range_of",
    "scalars",
]
