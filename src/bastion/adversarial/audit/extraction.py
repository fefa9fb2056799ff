"""The extraction family: surrogate fidelity and accuracy against query budgets per query strategy, and
against a label-only (hardened) API.

Each copy is measured three ways on the held-out rows: ``fidelity`` — agreement with the audited endpoint's
answers; ``accuracy`` — against the true labels; and, when the target names a ``reference`` (the clean
model behind a defended endpoint), ``reference_agreement`` — agreement with that model. Against a defended
endpoint the first compares the copy with defended (possibly misinformed) answers, so the last two are the
measure of what was stolen."""

from __future__ import annotations

from typing import Any

from bastion.adversarial import grading
from bastion.adversarial.audit.registry import register_family
from bastion.adversarial.audit.types import (
    AuditBudget,
    AuditTarget,
    Progress,
    SectionResult,
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
    best_fid, best_acc, best_ref = 0.0, 0.0, 0.0
    reference_pred = t.reference.predict(ex) if t.reference is not None else None
    for i, strat in enumerate(strategies):
        res = extract(
            victim=t.model, strategy=strat, budgets=budgets, data=pool, eval_x=ex, eval_y=ey, seed=seed + i
        )
        points[strat] = [[p.queries, p.fidelity, p.accuracy] for p in res.points]
        metrics[f"{strat}_fidelity"] = res.points[-1].fidelity
        metrics[f"{strat}_accuracy"] = res.points[-1].accuracy
        best_fid = max(best_fid, res.points[-1].fidelity)
        best_acc = max(best_acc, res.points[-1].accuracy or 0.0)
        if reference_pred is not None:
            agree = float((res.surrogate.predict(ex) == reference_pred).mean())
            metrics[f"{strat}_reference_agreement"] = agree
            best_ref = max(best_ref, agree)
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
    # the endpoint's answers after the attacks (as this caller sees them by then: a defended endpoint may have
    # flagged it)
    endpoint_pred = t.model.predict(ex)
    metrics.update(
        {
            "fidelity": best_fid,
            "surrogate_accuracy": best_acc,
            "victim_accuracy": float((endpoint_pred == ey).mean()),
            "label_only_fidelity": hardened.points[-1].fidelity,
            "max_queries": budgets[-1],
        }
    )
    if reference_pred is not None:
        metrics["reference_agreement"] = best_ref
        metrics["reference_accuracy"] = float((reference_pred == ey).mean())
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
            "fidelity = agreement with the endpoint's answers; accuracy = against the true labels"
            + (
                f"; the best copy agrees with the reference (clean) model on {best_ref:.1%}"
                if reference_pred is not None
                else "; give the clean model as the reference to measure agreement with it"
            ),
        ),
    )


register_family("extraction", _extraction)
