"""``bastion audit``: red-team a model (evasion, membership, extraction, poisoning) and grade it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
from bastion.errors import InvalidInput, PolicyViolation

_ATTACKS_HELP = "Comma-separated attack families: evasion, membership, extraction, poisoning."


def _parse_clip(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise InvalidInput("--clip takes two numbers: LO,HI") from exc
    if not lo < hi:
        raise InvalidInput("--clip needs LO < HI")
    return lo, hi


def _one_torch_thread() -> None:
    """The audit's models are small: one intra-op thread is fastest and fair to a shared machine."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def _project_defaults(home: Path | None, budget: str | None, policy: Path | None) -> tuple[str, Path | None]:
    """Fill ``--budget`` / ``--policy`` from the project's ``[audit]`` table when a project home exists."""
    from bastion.config import load_settings

    section: Any = {}
    if budget is None or policy is None:
        settings = load_settings(home, must_exist=False)
        section = settings.section("audit")
        if policy is None and section.get("policy"):
            policy = Path(str(section["policy"]))
            if not policy.is_absolute():
                policy = settings.home / policy
    return str(budget or section.get("budget") or "quick"), policy


def _is_registry(ref: str) -> bool:
    from bastion.adversarial.loading import _REGISTRY

    return bool(_REGISTRY.match(ref)) and not Path(ref).exists()


def _run(
    *,
    demo: bool,
    model: str | None,
    data: Path | None,
    out: Path,
    attacks: str,
    budget: str | None,
    policy: Path | None,
    seed: int,
    fmt: OutputFormat,
    weights: Path | None,
    target_column: str,
    clip: str | None,
    trust_types: list[str],
    n_classes: int | None,
    home: Path | None,
) -> int:
    from bastion.adversarial.audit import AuditTarget, demo_target, run_audit
    from bastion.adversarial.loading import describe_model, load_data, open_model
    from bastion.adversarial.policy import check_policy, load_policy
    from bastion.report.audit import write_audit

    if demo == (model is not None):
        raise InvalidInput("give either --demo or --model (with --data)")
    if model is not None and data is None:
        raise InvalidInput("--model needs --data (.npz with x, y or a .csv with a target column)")
    families = [a.strip() for a in attacks.split(",") if a.strip()]
    _one_torch_thread()
    budget, policy = _project_defaults(home, budget, policy)
    gate = load_policy(policy) if policy is not None else None
    vault = None
    registry_ref = None

    with _progress(fmt) as progress:
        if demo:
            progress("setup", 0.0, "training the demo model on digits")
            target = demo_target(seed=seed)
            report = run_audit(target=target, attacks=families, budget=budget, seed=seed, progress=progress)
        else:
            assert model is not None and data is not None
            ds = load_data(data, target=target_column)
            classes = n_classes or int(ds.y.max()) + 1
            if classes < 2:
                raise InvalidInput("the data holds a single class; pass --n-classes")
            if _is_registry(model):
                from bastion.cli._common import open_vault

                vault = open_vault(home)
            with open_model(
                model,
                input_shape=ds.x.shape[1:],
                n_classes=classes,
                weights=weights,
                clip_values=_parse_clip(clip),
                trusted_types=trust_types,
                vault=vault,
            ) as loaded:
                registry_ref = loaded.registry_ref
                held_out = ds.x if ds.member is None else ds.x[~ds.member]
                held_y = ds.y if ds.member is None else ds.y[~ds.member]
                target = AuditTarget(
                    model=loaded.adapter,
                    x=held_out,
                    y=held_y,
                    x_train=None if ds.member is None else ds.x[ds.member],
                    y_train=None if ds.member is None else ds.y[ds.member],
                    trainer=loaded.trainer,
                    description={**describe_model(loaded), "data": {"source": ds.source}},
                )
                report = run_audit(
                    target=target, attacks=families, budget=budget, seed=seed, progress=progress
                )
    json_path, html_path = write_audit(report, out)
    recorded = None
    if vault is not None and registry_ref is not None:
        digest = hashlib.sha256(json_path.read_bytes()).hexdigest()
        vault.annotate(registry_ref, namespace="audit", data={**report.summary(), "report_sha256": digest})
        recorded = registry_ref
    violations = check_policy(report, gate) if gate is not None else ()
    if fmt is OutputFormat.json:
        print_json(
            {
                "grade": report.grade,
                "reasons": list(report.reasons),
                "report_json": str(json_path),
                "report_html": str(html_path),
                "families": report.summary()["families"],
                "recorded_on": recorded,
                "violations": [str(v) for v in violations],
            }
        )
    else:
        _print_summary(report, json_path, html_path, recorded, [str(v) for v in violations])
    if violations:
        raise PolicyViolation(f"{len(violations)} policy violation(s): " + "; ".join(map(str, violations)))
    return 0


class _progress:
    """Rich progress bars on stderr (one per attack family); silent for JSON output."""

    def __init__(self, fmt: OutputFormat) -> None:
        self.enabled = fmt is OutputFormat.text
        self.bars: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(
                TextColumn("{task.description:<11}"),
                BarColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bars.start()
        return self.update

    def update(self, family: str, fraction: float, message: str) -> None:
        if self.bars is None:
            return
        if family not in self.tasks:
            self.tasks[family] = self.bars.add_task(family, total=1.0, note="")
        self.bars.update(self.tasks[family], completed=max(0.0, min(fraction, 1.0)), note=message)

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()


def _print_summary(
    report: Any, json_path: Path, html_path: Path, recorded: str | None, violations: list[str]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"bastion audit — overall grade {report.grade}")
    for col in ("family", "status", "grade", "attack, no defence", "with the defence"):
        table.add_column(col)
    for family, sec in report.sections.items():
        table.add_row(family, sec.status, sec.grade or "-", sec.attack or sec.reason, sec.defence or "-")
    console.print(table)
    for reason in report.reasons:
        console.print(f"  {reason}", markup=False, highlight=False)
    for sec in report.sections.values():
        for w in sec.warnings:
            console.print(f"  warning: {w}", markup=False, highlight=False)
    console.print(f"report: {json_path}\nhtml:   {html_path}", markup=False, highlight=False)
    if recorded:
        console.print(f"recorded on {recorded} (annotation 'audit')", markup=False, highlight=False)
    for v in violations:
        console.print(f"  policy violation: {v}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        demo: bool = typer.Option(False, "--demo", help="Train a small model on digits and audit it."),
        model: str | None = typer.Option(
            None,
            "--model",
            help="module:factory (+ --weights), TorchScript file, .skops file, bastion model directory, "
            "http(s)://host/v2/models/NAME, or registry NAME:VERSION.",
        ),
        data: Path | None = typer.Option(None, "--data", help=".npz (x, y[, member]) or .csv with --target."),
        out: Path = typer.Option(..., "--out", help="Directory for report.json and report.html."),
        attacks: str = typer.Option(
            "evasion,membership,extraction,poisoning", "--attacks", help=_ATTACKS_HELP
        ),
        budget: str | None = typer.Option(
            None, "--budget", help="quick | standard | thorough (default: [audit] budget, else quick)."
        ),
        policy: Path | None = typer.Option(
            None, "--policy", help="TOML thresholds; exit 1 on a violation (default: [audit] policy)."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed for every random choice of the audit."),
        weights: Path | None = typer.Option(
            None, "--weights", help="safetensors weights for module:factory."
        ),
        target_column: str = typer.Option("target", "--target", help="Label column of a CSV data file."),
        clip: str | None = typer.Option(None, "--clip", help="Valid input range LO,HI (e.g. 0,1)."),
        trust_type: list[str] = typer.Option([], "--trust-type", help="Extra type a .skops file may hold."),
        n_classes: int | None = typer.Option(
            None, "--n-classes", help="Number of classes (default: from y)."
        ),
        fmt: OutputFormat = FORMAT_OPTION,
        home: Path | None = HOME_OPTION,
    ) -> int:
        """Red-team a model: evasion, membership inference, extraction and poisoning, graded A–F."""
        return _run(
            demo=demo,
            model=model,
            data=data,
            out=out,
            attacks=attacks,
            budget=budget,
            policy=policy,
            seed=seed,
            fmt=fmt,
            weights=weights,
            target_column=target_column,
            clip=clip,
            trust_types=list(trust_type),
            n_classes=n_classes,
            home=home,
        )


__all__ = ["register"]
