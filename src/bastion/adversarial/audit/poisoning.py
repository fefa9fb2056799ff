"""The poisoning family: a BadNets backdoor and a label flip, the poisoned model retrained with the target's
recipe, and the backdoor detectors (activation clustering, spectral signatures, STRIP)."""

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
    lo, hi = range_of(t.model, t.x)
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


register_family("poisoning", _poisoning)
