"""The extraction family: surrogate fidelity and accuracy against query budgets per query strategy, and
against a label-only (hardened) API."""

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


register_family("extraction", _extraction)
