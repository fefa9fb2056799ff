"""The evasion family: the robustness ensemble at the reference ε, robust accuracy against ε, FGSM and
PGD-L2, the gradient-masking check and the feature-squeezing detector against a non-adaptive and an adaptive
(BPDA) attacker."""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.adversarial import grading
from bastion.adversarial.audit.registry import register_family
from bastion.adversarial.audit.types import (
    AuditBudget,
    AuditTarget,
    Progress,
    SectionResult,
    range_of,
)
from bastion.models.adapters import TorchAdapter


def _evasion(t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult:
    from bastion.adversarial.attacks import evasion as ev

    rng = np.random.default_rng(seed)
    idx = rng.permutation(t.x.shape[0])[: b.n_eval]
    x, y = t.x[idx], t.y[idx]
    lo, hi = range_of(t.model, t.x)
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


register_family("evasion", _evasion)
