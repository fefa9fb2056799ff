"""The membership family: the loss-threshold baseline and LiRA (offline and online) on a balanced sample,
plus the baseline against rounded outputs (output hardening)."""

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
)


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


register_family("membership", _membership)
