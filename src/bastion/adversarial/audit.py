"""The audit runner: red-team one model across four attack families and grade the result.

:func:`run_audit` takes an :class:`AuditTarget` (the model, held-out data, optionally its training rows and a
way to train another model like it) and runs the families asked for:

* **evasion** — the AutoAttack-style ensemble at the reference ε (10 % of the input range, L∞), robust
  accuracy against ε, FGSM and PGD-L2, the gradient-masking check and, for white-box models with a known
  input range, the feature-squeezing detector against non-adaptive PGD and the adaptive BPDA attacker;
* **membership** — the loss-threshold baseline and LiRA (offline and online) on a balanced sample of members
  and non-members, plus the baseline against rounded outputs (output hardening);
* **extraction** — surrogate fidelity and accuracy against query budgets for each query strategy, and
  against a label-only (hardened) API;
* **poisoning** — a BadNets backdoor and a label flip injected into the training rows, the poisoned model
  retrained with the target's recipe, and the backdoor detectors (activation clustering, spectral signatures,
  STRIP on the training set and at inference).

Grades (A best … F worst) per family follow the fixed thresholds of :mod:`bastion.adversarial.grading`, each
with an absolute floor; the overall grade is the worst family grade (an attacker takes the weakest path), and
an audit that did not measure every family grades ``incomplete``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial import grading
from bastion.adversarial.grading import FAMILIES, GRADES, INCOMPLETE, worst
from bastion.adversarial.loading import Trainer
from bastion.errors import InvalidInput
from bastion.models.adapters import TorchAdapter
from bastion.models.interface import ModelAdapter, check_input, check_labels

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
                k: {"status": v.status, "grade": v.grade, "metrics": _scalars(v.metrics)}
                for k, v in self.sections.items()
            },
        }


def _scalars(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if isinstance(v, int | float | str | bool) or v is None}


# --------------------------------------------------------------------------------------------- the families
def _range_of(model: ModelAdapter, x: np.ndarray) -> tuple[float, float]:
    clip = getattr(model, "clip_values", None)
    if clip is not None:
        return float(clip[0]), float(clip[1])
    return float(x.min()), float(x.max())


def _evasion(t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult:
    from bastion.adversarial.attacks import evasion as ev

    rng = np.random.default_rng(seed)
    idx = rng.permutation(t.x.shape[0])[: b.n_eval]
    x, y = t.x[idx], t.y[idx]
    lo, hi = _range_of(t.model, t.x)
    span = hi - lo
    eps = b.ref_eps * span
    white = isinstance(t.model, TorchAdapter)
    steps_total = 3 + (2 if white else 0)
    done = 0

    def tick(msg: str) -> None:
        nonlocal done
        done += 1
        progress("evasion", min(done / steps_total, 1.0), msg)

    cfg = ev.EnsembleConfig(
        pgd_steps=b.pgd_steps,
        pgd_restarts=b.pgd_restarts,
        apgd_steps=b.apgd_steps,
        square_queries=0 if getattr(t.model, "label_only", False) else b.square_queries,
        hsj_iterations=b.hsj_iterations,
        hsj_examples=b.hsj_examples,
    )
    ens = ev.evaluate_robustness(t.model, x, y, eps=eps, norm="inf", config=cfg, seed=seed)
    tick("ensemble")
    curve = ev.accuracy_vs_eps(
        t.model,
        x,
        y,
        eps_values=[e * span for e in b.eps_grid],
        steps=b.pgd_steps,
        square_queries=b.square_queries,
        seed=seed,
    )
    tick("accuracy vs eps")
    metrics: dict[str, Any] = {
        "clean_accuracy": ens.clean_accuracy,
        "robust_accuracy": ens.robust_accuracy,
        "eps": eps,
    }
    metrics.update({f"robust_accuracy_{k.replace('-', '_')}": v for k, v in ens.per_attack.items()})
    notes = [
        f"ensemble at L∞ ε = {eps:.4g} ({b.ref_eps:.0%} of the input range): "
        f"{', '.join(ens.per_attack)}; an example counts as robust only if it survives every attack",
    ]
    warnings = [ens.masking_warning] if ens.masking_warning else []
    if white:
        x_fgsm = ev.fgsm(t.model, x, y, eps=eps)
        metrics["robust_accuracy_fgsm"] = ev.accuracy(t.model, x_fgsm, y)
        eps_l2 = 1.0 * span
        x_l2 = ev.pgd(t.model, x, y, eps=eps_l2, norm="l2", steps=b.pgd_steps, seed=seed)
        metrics["robust_accuracy_pgd_l2"] = ev.accuracy(t.model, x_l2, y)
        metrics["eps_l2"] = eps_l2
        tick("fgsm, pgd-l2")
        if getattr(t.model, "clip_values", None) is not None:
            fs_metrics, fs_notes = _squeezing(t, x, y, eps, b, seed)
            metrics.update(fs_metrics)
            notes += fs_notes
        tick("feature squeezing")
    else:
        notes.append("black-box model: white-box attacks (PGD, APGD-CE, FGSM) and feature squeezing skipped")
    tick("done")
    grade = grading.grade_evasion(
        clean=ens.clean_accuracy,
        robust=ens.robust_accuracy,
        n_classes=t.model.n_classes,
        masking=ens.masking_warning is not None,
    )
    reason = (
        f"evasion: robust accuracy {ens.robust_accuracy:.1%} at ε={eps:.3g} vs clean {ens.clean_accuracy:.1%}"
        + (" (possible gradient masking)" if ens.masking_warning else "")
    )
    attack = (
        f"small input changes (L∞ ε = {eps:.3g}) leave {ens.robust_accuracy:.1%} of inputs correctly "
        f"classified, down from {ens.clean_accuracy:.1%}"
    )
    defence = (
        f"feature squeezing: an attacker who knows the detector still turns "
        f"{metrics['squeezing_adaptive_evasion_rate']:.1%} of correct inputs into undetected errors"
        if "squeezing_adaptive_evasion_rate" in metrics
        else ""
    )
    return SectionResult(
        family="evasion",
        status="ok",
        seed=seed,
        parameters={
            "n_examples": int(x.shape[0]),
            "norm": "inf",
            "eps": eps,
            "eps_grid": [p[0] for p in curve],
            "pgd_steps": b.pgd_steps,
            "pgd_restarts": b.pgd_restarts,
            "apgd_steps": b.apgd_steps,
            "square_queries": b.square_queries,
            "hsj_iterations": b.hsj_iterations,
            "hsj_examples": b.hsj_examples,
            "attack_for_curve": "pgd" if white else "square",
        },
        metrics=metrics,
        grade=grade,
        reason=reason,
        attack=attack,
        defence=defence,
        curves={"accuracy_vs_eps": [[e, a] for e, a in curve], "queries": dict(ens.queries)},
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _squeezing(
    t: AuditTarget, x: np.ndarray, y: np.ndarray, eps: float, b: AuditBudget, seed: int
) -> tuple[dict[str, Any], list[str]]:
    from bastion.adversarial._common import image_view
    from bastion.adversarial.defenses import feature_squeezing as fs

    _, h, w = image_view(t.model.input_shape)
    median = 2 if min(h, w) >= 16 else 0
    half = t.x.shape[0] // 2
    det = fs.calibrate_feature_squeezing(
        model=t.model, clean_x=t.x[:half], bit_depth=2 if median == 0 else 4, median_size=median
    )
    res = fs.evaluate_feature_squeezing(
        det,
        clean_x=t.x[half:],
        x=x,
        y=y,
        eps=eps,
        steps=b.pgd_steps,
        adaptive_steps=b.adaptive_steps,
        seed=seed,
    )
    metrics = {
        "squeezing_pgd_detected": res.pgd_detected,
        "squeezing_clean_fpr": res.clean_fpr,
        "squeezing_adaptive_evasion_rate": res.adaptive_evasion_rate,
        "squeezing_adaptive_detected": res.adaptive_detected,
    }
    notes = [
        f"feature squeezing (bit depth {det.bit_depth}, median {det.median_size or 'off'}; threshold at "
        f"{det.target_fpr:.0%} FPR on clean data) detects {res.pgd_detected:.1%} of successful "
        f"non-adaptive PGD examples; an adaptive BPDA attacker still turns {res.adaptive_evasion_rate:.1%} "
        "of correctly classified inputs into undetected errors — the honest figure for the defended model",
    ]
    return metrics, notes


def _membership(t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult:
    from bastion.adversarial.attacks import membership as mi
    from bastion.adversarial.defenses.output import HardenedAdapter

    if t.x_train is None or t.y_train is None:
        return SectionResult(
            "membership",
            "skipped",
            seed,
            reason="membership: skipped (no known training rows: give 'member' in the data)",
        )
    rng = np.random.default_rng(seed)
    n_train, n_held = t.x_train.shape[0], t.x.shape[0]
    n_side = min(b.mia_per_side, n_train, n_held)
    # The evaluation: a balanced sample of members and non-members.
    mi_idx, mo_idx = rng.permutation(n_train)[:n_side], rng.permutation(n_held)[:n_side]
    x = np.concatenate([t.x_train[mi_idx], t.x[mo_idx]])
    y = np.concatenate([t.y_train[mi_idx], t.y[mo_idx]])
    member = np.r_[np.ones(n_side, bool), np.zeros(n_side, bool)]
    # LiRA's shadow pool: the evaluation rows plus as many other known rows as the budget allows, up to twice
    # the target's training set, so that each shadow (trained on a random half) sees as many rows as the
    # target did when the data allows it, never fewer than the evaluation sample.
    size = max(min(n_train + n_held, 2 * n_train, b.shadow_pool), 2 * n_side)
    rest = np.r_[np.setdiff1d(np.arange(n_train), mi_idx), n_train + np.setdiff1d(np.arange(n_held), mo_idx)]
    extra = rng.permutation(rest)[: size - 2 * n_side]
    pool_idx = np.r_[mi_idx, n_train + mo_idx, extra]
    all_x, all_y = np.concatenate([t.x_train, t.x]), np.concatenate([t.y_train, t.y])
    pool_x, pool_y = all_x[pool_idx], all_y[pool_idx]
    pool_member = pool_idx < n_train
    base = mi.threshold_attack(t.model, x, y, member=member)
    progress("membership", 0.1, "threshold baseline")
    notes = []
    trainer = t.trainer
    if trainer is None:
        trainer = mi.mlp_shadow_trainer(
            input_shape=t.model.input_shape,
            n_classes=t.model.n_classes,
            epochs=b.shadow_epochs,
            clip_values=getattr(t.model, "clip_values", None),
        )
        notes.append("shadows: bastion's default MLP recipe (the target's own training recipe is unknown)")
    else:
        notes.append("shadows: trained with the target's own recipe")
    lira = mi.lira(
        t.model,
        pool_x,
        pool_y,
        member=pool_member,
        train_shadow=trainer,
        n_shadows=b.n_shadows,
        seed=seed,
        score_rows=np.arange(2 * n_side),
        progress=lambda k, n: progress("membership", 0.1 + 0.85 * k / n, f"shadow {k}/{n}"),
    )
    rounded = mi.threshold_attack(HardenedAdapter(t.model, decimals=1), x, y, member=member)
    results = {"loss_threshold": base, "lira_offline": lira.offline, "lira_online": lira.online}
    metrics: dict[str, Any] = {}
    for name, r in results.items():
        metrics[f"{name}_auc"] = r.auc
        metrics[f"{name}_tpr_at_0_1_fpr"] = r.tpr_at_0_1_fpr
        metrics[f"{name}_tpr_at_1_fpr"] = r.tpr_at_1_fpr
    metrics["auc"] = max(r.auc for r in results.values())
    metrics["tpr_at_0_1_fpr"] = max(r.tpr_at_0_1_fpr for r in results.values())
    metrics["tpr_at_1_fpr"] = max(r.tpr_at_1_fpr for r in results.values())
    metrics["rounded_outputs_auc"] = rounded.auc
    auc, tpr1 = metrics["auc"], metrics["tpr_at_1_fpr"]
    grade = grading.grade_membership(auc=auc, tpr_at_1_fpr=tpr1)
    notes.append(
        f"hardening: rounding outputs to 1 decimal moves the baseline AUC from {base.auc:.3f} to "
        f"{rounded.auc:.3f}"
    )
    notes.append(
        f"LiRA shadows train on random halves ({size // 2} rows) of a pool of {size} known rows; the target "
        f"saw {n_train}"
        + (
            " (shadows smaller than the target underestimate its IN scores: a larger pool gives a tighter "
            "estimate at the cost of training each shadow on more rows)"
            if size // 2 < n_train
            else ""
        )
    )
    if n_side < 500:
        notes.append(f"{n_side} members and {n_side} non-members: TPR at 0.1 % FPR is coarse at this size")
    progress("membership", 1.0, "done")
    return SectionResult(
        family="membership",
        status="ok",
        seed=seed,
        parameters={
            "members": n_side,
            "non_members": n_side,
            "n_shadows": b.n_shadows,
            "lira_variance": "global (fixed)",
            "shadow_pool": int(size),
            "shadow_training_rows": int(size // 2),
            "target_training_rows": int(n_train),
        },
        metrics=metrics,
        grade=grade,
        reason=f"membership: best AUC {auc:.3f}, TPR {tpr1:.1%} at 1 % FPR",
        attack=f"the best attack tells training rows from others with AUC {auc:.3f} (0.5 = guessing) and "
        f"finds {tpr1:.1%} of training rows while wrongly accusing 1 % of other rows",
        defence=f"rounding outputs to 1 decimal moves the loss-threshold attack's AUC from {base.auc:.3f} to "
        f"{rounded.auc:.3f}",
        curves={
            "roc": {name: {"fpr": list(r.roc_fpr), "tpr": list(r.roc_tpr)} for name, r in results.items()}
        },
        notes=tuple(notes),
    )


def _extraction(t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult:
    from bastion.adversarial.attacks.extraction import extract
    from bastion.adversarial.defenses.output import HardenedAdapter

    half = t.x.shape[0] // 2
    if t.x_train is not None:
        pool, ex, ey = t.x_train, t.x, t.y
    else:
        pool, ex, ey = t.x[:half], t.x[half:], t.y[half:]
    budgets = tuple(sorted(b.extraction_budgets))
    points: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    strategies = list(b.extraction_strategies)
    total = len(strategies) + 1
    best_fid, best_acc = 0.0, 0.0
    for i, strat in enumerate(strategies):
        res = extract(
            victim=t.model, strategy=strat, budgets=budgets, data=pool, eval_x=ex, eval_y=ey, seed=seed + i
        )
        points[strat] = [[p.queries, p.fidelity, p.accuracy] for p in res.points]
        metrics[f"{strat}_fidelity"] = res.points[-1].fidelity
        best_fid = max(best_fid, res.points[-1].fidelity)
        best_acc = max(best_acc, res.points[-1].accuracy or 0.0)
        progress("extraction", (i + 1) / total, strat)
    hardened = extract(
        victim=HardenedAdapter(t.model, label_only=True),
        strategy="knockoff",
        budgets=budgets,
        data=pool,
        eval_x=ex,
        eval_y=ey,
        seed=seed,
    )
    points["knockoff (label-only API)"] = [[p.queries, p.fidelity, p.accuracy] for p in hardened.points]
    metrics.update(
        {
            "fidelity": best_fid,
            "surrogate_accuracy": best_acc,
            "victim_accuracy": float((t.model.predict(ex) == ey).mean()),
            "label_only_fidelity": hardened.points[-1].fidelity,
            "max_queries": budgets[-1],
        }
    )
    progress("extraction", 1.0, "done")
    grade = grading.grade_extraction(fidelity=best_fid)
    return SectionResult(
        family="extraction",
        status="ok",
        seed=seed,
        parameters={
            "budgets": list(budgets),
            "strategies": strategies,
            "surrogate": "MLP(128), Adam",
            "natural_pool": int(pool.shape[0]),
            "eval_rows": int(ex.shape[0]),
        },
        metrics=metrics,
        grade=grade,
        reason=f"extraction: a surrogate agrees with the model on {best_fid:.1%} of inputs after "
        f"{budgets[-1]} queries",
        attack=f"a copy trained from {budgets[-1]} queries gives the model's answer on {best_fid:.1%} of "
        "inputs",
        defence=f"answering with labels only (no scores): the copy agrees on "
        f"{hardened.points[-1].fidelity:.1%}",
        curves={"fidelity_vs_queries": points},
        notes=(
            f"label-only outputs (hardening) give {hardened.points[-1].fidelity:.1%} fidelity at "
            f"{budgets[-1]} queries",
        ),
    )


def _poisoning(t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult:
    from bastion.adversarial.attacks import poisoning as po
    from bastion.adversarial.defenses import backdoor as bd

    if t.trainer is None:
        return SectionResult(
            "poisoning", "skipped", seed, reason="poisoning: skipped (no training recipe for this model type)"
        )
    if t.x_train is not None and t.y_train is not None:
        x_tr, y_tr, x_te, y_te = t.x_train, t.y_train, t.x, t.y
    else:
        half = t.x.shape[0] // 2
        x_tr, y_tr, x_te, y_te = t.x[:half], t.y[:half], t.x[half:], t.y[half:]
    target_class = int(np.bincount(y_tr).argmax())
    lo, hi = _range_of(t.model, t.x)
    trig = po.badnets_trigger(t.model.input_shape, low=lo, high=hi)
    poisoned = po.badnets(x_tr, y_tr, rate=b.poison_rate, target=target_class, trigger=trig, seed=seed)
    model = t.trainer(poisoned.x, poisoned.y, seed)
    progress("poisoning", 0.35, "backdoored model trained")
    clean_acc = float((model.predict(x_te) == y_te).mean())
    other = y_te != target_class
    triggered = trig.apply(x_te[other])
    asr = float((model.predict(triggered) == target_class).mean())
    flipped = po.label_flip(x_tr, y_tr, rate=b.poison_rate, n_classes=t.model.n_classes, seed=seed)
    flip_model = t.trainer(flipped.x, flipped.y, seed + 1)
    flip_acc = float((flip_model.predict(x_te) == y_te).mean())
    progress("poisoning", 0.7, "label-flip model trained")
    detections = []
    if isinstance(model, TorchAdapter):
        detections.append(bd.activation_clustering(model, poisoned.x, poisoned.y, seed=seed))
        detections.append(bd.spectral_signatures(model, poisoned.x, poisoned.y, expected_rate=b.poison_rate))
    clean_half = x_te.shape[0] // 2
    detections.append(
        bd.strip_training_set(
            model=model, x=poisoned.x, y=poisoned.y, clean_x=x_te, target_frr=0.03, seed=seed
        )
    )
    detections = [d.with_truth(poisoned.poisoned) for d in detections]
    strip = bd.calibrate_strip(model=model, clean_x=x_te[:clean_half], seed=seed)
    inf_other = other[clean_half:]
    strip_tpr = float(strip.detect(trig.apply(x_te[clean_half:][inf_other])).mean())
    strip_frr = float(strip.detect(x_te[clean_half:]).mean())
    progress("poisoning", 1.0, "detectors")
    metrics: dict[str, Any] = {
        "clean_accuracy_backdoored": clean_acc,
        "attack_success_rate": asr,
        "clean_accuracy_label_flip": flip_acc,
        "strip_inference_tpr": strip_tpr,
        "strip_inference_frr": strip_frr,
    }
    for d in detections:
        key = d.method.replace("-", "_")
        metrics[f"{key}_tpr"] = d.tpr
        metrics[f"{key}_fpr"] = d.fpr
    usable = [d for d in detections if (d.fpr or 0.0) <= 0.05]
    top = max(usable, key=lambda d: d.tpr or 0.0) if usable else None
    best = (top.tpr or 0.0) if top is not None else 0.0
    metrics["detection_tpr"] = best
    metrics["detection_fpr"] = (top.fpr or 0.0) if top is not None else None
    metrics["detection_method"] = top.method if top is not None else None
    grade = grading.grade_poisoning(attack_success=asr, detection_tpr=best)
    attack = (
        f"poisoning {b.poison_rate:.0%} of the training rows (BadNets) makes the retrained model answer "
        f"class {target_class} on {asr:.1%} of inputs carrying the trigger, with no defence "
        f"(clean accuracy {clean_acc:.1%})"
    )
    defence = (
        f"the best training-set detector ({top.method}) flags {best:.1%} of the poisoned rows with "
        f"{top.fpr or 0.0:.1%} false alarms"
        if top is not None
        else "no training-set detector found the poison at ≤ 5 % false alarms"
    )
    return SectionResult(
        family="poisoning",
        status="ok",
        seed=seed,
        parameters={
            "badnets_rate": b.poison_rate,
            "target_class": target_class,
            "trigger": f"{trig.size}x{trig.size} checkerboard, bottom-right",
            "label_flip_rate": b.poison_rate,
            "training_rows": int(x_tr.shape[0]),
        },
        metrics=metrics,
        grade=grade,
        reason=f"poisoning: attack success {asr:.1%} without a defence; detection {best:.1%} of poisoned "
        "rows at ≤ 5 % false alarms",
        attack=attack,
        defence=defence,
        curves={
            "backdoor_scores": {
                d.method: {
                    "poisoned": d.scores[poisoned.poisoned].tolist(),
                    "clean": d.scores[~poisoned.poisoned].tolist(),
                }
                for d in detections
            }
        },
        notes=(
            f"STRIP at inference flags {strip_tpr:.1%} of triggered inputs with {strip_frr:.1%} false alarms",
            "the poisoned models are retrained with the target's recipe; the audited model is not modified",
        ),
    )


_RUNNERS: Mapping[str, Callable[[AuditTarget, AuditBudget, int, Progress], SectionResult]] = {
    "evasion": _evasion,
    "membership": _membership,
    "extraction": _extraction,
    "poisoning": _poisoning,
}


def _validate_target(t: AuditTarget) -> AuditTarget:
    m = t.model
    x = check_input(t.x, m.input_shape, name="data x")
    y = check_labels(t.y, x.shape[0], m.n_classes, name="data y")
    if x.shape[0] < 20:
        raise InvalidInput(f"the audit needs at least 20 held-out rows, got {x.shape[0]}")
    xt = yt = None
    if t.x_train is not None or t.y_train is not None:
        if t.x_train is None or t.y_train is None:
            raise InvalidInput("give both x_train and y_train")
        xt = check_input(t.x_train, m.input_shape, name="training x")
        yt = check_labels(t.y_train, xt.shape[0], m.n_classes, name="training y")
    return AuditTarget(
        model=m, x=x, y=y, x_train=xt, y_train=yt, trainer=t.trainer, description=t.description
    )


def run_audit(
    *,
    target: AuditTarget,
    attacks: Sequence[str] = FAMILIES,
    budget: str = "quick",
    seed: int = 0,
    progress: Progress | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> AuditReport:
    """Run the requested attack families against ``target`` and grade the model."""
    from bastion import __version__

    if budget not in BUDGETS:
        raise InvalidInput(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    families = list(dict.fromkeys(attacks))
    unknown = [a for a in families if a not in FAMILIES]
    if unknown or not families:
        raise InvalidInput(
            f"unknown attack famil{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}"
            if unknown
            else "choose at least one attack family",
            hint=f"choose from {', '.join(FAMILIES)}",
        )
    t = _validate_target(target)
    b = BUDGETS[budget]
    report_progress = progress or (lambda family, fraction, message: None)
    sections: dict[str, SectionResult] = {}
    for i, family in enumerate(families):
        start = time.perf_counter()
        result = _RUNNERS[family](t, b, seed + 1000 * i, report_progress)
        sections[family] = SectionResult(**{**result.__dict__, "seconds": time.perf_counter() - start})
        report_progress(family, 1.0, "done")
    grade, reasons = grading.overall({f: (s.status, s.grade, s.reason) for f, s in sections.items()})
    stamp = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat(timespec="seconds")
    desc = dict(t.description)
    data_desc = {
        "held_out_rows": int(t.x.shape[0]),
        "training_rows": None if t.x_train is None else int(t.x_train.shape[0]),
        **dict(desc.pop("data", {}) or {}),
    }
    return AuditReport(
        created=stamp,
        bastion_version=__version__,
        model=desc,
        data=data_desc,
        budget=budget,
        seed=seed,
        sections=sections,
        grade=grade,
        reasons=reasons,
    )


def demo_target(*, seed: int = 0, epochs: int = 30) -> AuditTarget:
    """A small MLP trained on scikit-learn's digits (pixels in [0, 1]): the ``--demo`` model."""
    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    ds = load_dataset("digits", seed=seed)
    trainer = mlp_shadow_trainer(
        input_shape=(ds.n_features,),
        n_classes=ds.n_classes,
        hidden=(64,),
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        clip_values=(0.0, 1.0),
    )
    model = trainer(ds.x_train, ds.y_train, seed)
    return AuditTarget(
        model=model,
        x=ds.x_test,
        y=ds.y_test,
        x_train=ds.x_train,
        y_train=ds.y_train,
        trainer=trainer,
        description={
            "reference": "demo: MLP(64) on digits",
            "kind": "torch",
            "input_shape": [ds.n_features],
            "n_classes": ds.n_classes,
            "white_box": True,
            "data": {"source": "scikit-learn digits (built in)"},
        },
    )


__all__ = [
    "BUDGETS",
    "FAMILIES",
    "GRADES",
    "INCOMPLETE",
    "AuditBudget",
    "AuditReport",
    "AuditTarget",
    "SectionResult",
    "demo_target",
    "run_audit",
    "worst",
]
