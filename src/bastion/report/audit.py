"""The adversarial audit as a report: ``report.json`` and a self-contained ``report.html`` with plots.

Lives in ``report`` (layer 6) because it composes a capability's result into a page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bastion.adversarial.audit import FAMILIES, AuditReport
from bastion.files import atomic_write
from bastion.report import labels, plots
from bastion.report.document import Document, Figure, Section, write_json
from bastion.report.html import render_html

_TITLES = {
    "evasion": "Evasion",
    "membership": "Membership inference",
    "extraction": "Model extraction",
    "poisoning": "Poisoning and backdoors",
}


def _figures(family: str, curves: dict[str, Any]) -> list[Figure]:
    figs: list[Figure] = []
    if family == "evasion" and curves.get("accuracy_vs_eps"):
        pts = curves["accuracy_vs_eps"]
        figs.append(
            plots.line_chart(
                {"robust accuracy": ([p[0] for p in pts], [p[1] for p in pts])},
                title="Accuracy vs ε (L∞)",
                xlabel="ε",
                ylabel="accuracy",
            )
        )
    if family == "membership" and curves.get("roc"):
        series = {}
        for name, roc in curves["roc"].items():
            pairs = [(f, t) for f, t in zip(roc["fpr"], roc["tpr"], strict=True) if f > 0]
            if pairs:
                series[name] = ([p[0] for p in pairs], [max(p[1], 1e-4) for p in pairs])
        if series:
            figs.append(
                plots.line_chart(
                    series,
                    title="ROC (log scale)",
                    xlabel="false positive rate",
                    ylabel="true positive rate",
                    logx=True,
                    logy=True,
                    diagonal=True,
                    caption="the low-FPR corner is what matters for privacy",
                )
            )
    if family == "extraction" and curves.get("fidelity_vs_queries"):
        series = {k: ([p[0] for p in v], [p[1] for p in v]) for k, v in curves["fidelity_vs_queries"].items()}
        figs.append(
            plots.line_chart(
                series,
                title="Fidelity vs queries",
                xlabel="victim queries",
                ylabel="label agreement",
                logx=True,
            )
        )
    if family == "poisoning" and curves.get("backdoor_scores"):
        for method, groups in curves["backdoor_scores"].items():
            figs.append(
                plots.histogram(
                    {"clean rows": groups["clean"], "poisoned rows": groups["poisoned"]},
                    title=f"Backdoor scores: {method}",
                    xlabel="detector score",
                )
            )
    return figs


def build_document(report: AuditReport, *, with_plots: bool = True) -> Document:
    sections = []
    for family, sec in report.sections.items():
        figs = _figures(family, dict(sec.curves)) if with_plots and sec.status == "ok" else []
        sections.append(
            Section(
                title=_TITLES.get(family, family),
                metrics=labels.humanise(family, dict(sec.metrics)),
                key_figure=labels.key_figure(family, dict(sec.metrics)) if sec.status == "ok" else None,
                guidance=labels.GUIDANCE.get(family, ""),
                parameters={
                    k.replace("_", " "): v
                    for k, v in {
                        **dict(sec.parameters),
                        "seed": sec.seed,
                        "seconds": round(sec.seconds, 2),
                    }.items()
                },
                notes=tuple(sec.notes) + ((sec.reason,) if sec.status != "ok" else ()),
                warnings=tuple(sec.warnings),
                figures=figs,
                grade=sec.grade,
            )
        )
    summary = [
        [
            _TITLES.get(f, f),
            s.status,
            s.grade or "-",
            s.attack or s.reason.split(": ", 1)[-1],
            s.defence or "-",
        ]
        for f, s in report.sections.items()
    ]
    summary += [
        [_TITLES[f], "not requested", "-", "not measured", "-"] for f in FAMILIES if f not in report.sections
    ]
    model = report.model.get("reference", "model")
    return Document(
        title=f"bastion audit — {model}",
        grade=report.grade,
        subtitle=f"budget {report.budget}, seed {report.seed}, {report.created}, "
        f"bastion {report.bastion_version}",
        summary=summary,
        summary_header=["family", "status", "grade", "attack, no defence", "with the defence"],
        reasons=report.reasons,
        sections=sections,
        footer="Grades: A (hard to attack) … F (easy), each family with an absolute floor (see "
        "bastion.adversarial.grading). The overall grade is the worst family grade, and only an audit "
        "that measured all four families gets one: otherwise it is 'incomplete'. Figures are measured, "
        "not modelled; see report.json for every number.",
    )


def write_audit(report: AuditReport, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(out / "report.json", report.to_dict())
    html_path = out / "report.html"
    atomic_write(html_path, render_html(build_document(report)), mode=0o644)
    return json_path, html_path


__all__ = ["build_document", "write_audit"]
