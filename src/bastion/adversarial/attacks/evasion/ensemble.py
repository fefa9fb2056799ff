"""The AutoAttack-style ensemble: each example counts as robust only if it survives every registered attack
(worst case per example), with a gradient-masking warning when black-box attacks beat white-box ones.
Attacks plug in through :mod:`bastion.adversarial.attacks.evasion.registry`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial._common import (
    batch,
    check_eps,
    check_norm,
)
from bastion.adversarial.attacks.evasion.interface import EnsembleConfig
from bastion.adversarial.attacks.evasion.pgd import pgd
from bastion.adversarial.attacks.evasion.registry import EnsembleMember, ensemble_attacks
from bastion.adversarial.attacks.evasion.square import square
from bastion.errors import InvalidInput
from bastion.models.interface import ModelAdapter, supports_gradients


def accuracy(model: ModelAdapter, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``."""
    return float((model.predict(x) == np.asarray(y)).mean())


def _within(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    d = (x_adv - x).reshape(x.shape[0], -1)
    dist = np.abs(d).max(axis=1) if norm == "inf" else np.linalg.norm(d, axis=1)
    return np.asarray(dist <= eps * (1 + 1e-4) + 1e-6)


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

    The registered attacks run in order (``registry.ensemble_attacks``): white-box ones (PGD, APGD-CE)
    when the model has gradients; Square when it returns scores; HopSkipJump
    (label-only) on the first ``hsj_examples`` examples. A member's input counts only within ``eps``.
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
    members = ensemble_attacks()
    for member in members:
        if member.white_box and not white:
            continue
        run = member.run(model, xs, ys, eps=eps, norm=norm, config=cfg, seed=seed + member.seed_offset)
        if run is None:
            continue
        if run.queries is not None:
            queries[member.name] = run.queries
        record(member.name, run.x_adv, run.rows)
    if not robust_each:
        raise InvalidInput("no attack could run on this model with this configuration")
    per_attack = {name: float(r.mean()) for name, r in robust_each.items()}
    warning = _masking_warning(robust_each, members)
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


def _masking_warning(robust_each: dict[str, np.ndarray], members: Sequence[EnsembleMember]) -> str | None:
    """Warn when a black-box attack breaks examples that every white-box attack left standing."""
    white = [robust_each[m.name] for m in members if m.white_box and m.name in robust_each]
    if not white:
        return None
    for name in (m.name for m in members if not m.white_box):
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
