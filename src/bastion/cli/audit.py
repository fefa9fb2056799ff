"""``bastion audit``: red-team a model (evasion, membership, extraction, poisoning) and grade it.

``--models GLOB`` audits many registry versions in parallel (:mod:`bastion.cli._audit_many`)."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
from bastion.cli._progress import interactive, progress
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


def _bearer_headers(bearer_env: str | None, model: str | None) -> dict[str, str] | None:
    """``Authorization: Bearer`` from an environment variable (never from the command line)."""
    if bearer_env is None:
        return None
    if model is None or not model.startswith(("http://", "https://")):
        raise InvalidInput("--bearer-env is for an http(s):// --model endpoint")
    token = os.environ.get(bearer_env, "").strip()
    if not token:
        raise InvalidInput(f"${bearer_env} is not set (it should hold the gateway token)")
    return {"Authorization": f"Bearer {token}"}


def _factory_importable_from_cwd(model: str) -> None:
    """``pkg.mod:factory`` resolves against the current directory too, as ``uvicorn`` does."""
    from bastion.adversarial.loading import is_factory_ref

    if is_factory_ref(model) and not Path(model).exists():
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)


def _expected_features(adapter: Any) -> int | None:
    """How many input features a loaded model takes, when it can tell without being called."""
    module = getattr(adapter, "module", None)
    if module is not None:
        for layer in getattr(module, "modules", lambda: [])():
            n = getattr(layer, "in_features", None)
            if isinstance(n, int):
                return n
    n = getattr(getattr(adapter, "estimator", None), "n_features_in_", None)
    return int(n) if isinstance(n, int) else None


def _check_shape(adapter: Any, x: Any, data: Path, model: str) -> None:
    """Data and model must agree on the feature count: say which file and which counts when not."""
    import numpy as np

    width = int(np.prod(x.shape[1:])) if x.ndim > 1 else 1
    expected = _expected_features(adapter)
    if expected is not None and expected != width:
        raise InvalidInput(
            f"{data}: {width} features per row, but the model {model} takes {expected}",
            hint="audit the model with the data it was trained on (same columns, same order)",
        )
    try:
        adapter.predict(x[:1])
    except (RuntimeError, ValueError) as exc:
        raise InvalidInput(
            f"{data}: the model {model} cannot take rows of {width} features ({type(exc).__name__})"
        ) from exc


def _is_registry(ref: str) -> bool:
    from bastion.adversarial.loading import is_registry_ref

    return is_registry_ref(ref) and not Path(ref).exists()


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
    bearer_env: str | None = None,
) -> int:
    from bastion.adversarial.audit import AuditTarget, demo_target, run_audit
    from bastion.adversarial.loading import describe_model, load_data, open_model, to_model_space
    from bastion.adversarial.policy import check_policy, load_policy
    from bastion.report.audit import write_audit

    if demo == (model is not None):
        raise InvalidInput("give either --demo or --model (with --data)")
    if model is not None and data is None:
        raise InvalidInput("--model needs --data (.npz with x, y or a .csv with a target column)")
    families = [a.strip() for a in attacks.split(",") if a.strip()]
    headers = _bearer_headers(bearer_env, model)
    if model is not None:
        _factory_importable_from_cwd(model)
    if trust_types:
        logging.getLogger("bastion.audit").warning(
            "unsafe: trusting %d type(s) the scanner does not allow for this .skops load", len(trust_types)
        )
    _one_torch_thread()
    budget, policy = _project_defaults(home, budget, policy)
    gate = load_policy(policy) if policy is not None else None
    vault = None
    registry_ref = None

    with progress(enabled=interactive(json_output=fmt is OutputFormat.json)) as update:
        if demo:
            update("setup", 0.0, "training the demo model on digits")
            target = demo_target(seed=seed)
            update("setup", 1.0, "done")
            report = run_audit(target=target, attacks=families, budget=budget, seed=seed, progress=update)
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
                headers=headers,
            ) as loaded:
                if loaded.kind != "remote":
                    _check_shape(loaded.adapter, ds.x, data, model)
                    ds = to_model_space(ds, loaded)  # the model's stored preprocessing, applied once
                elif headers is not None:
                    cast(Any, loaded.adapter).negotiate(
                        ds.x
                    )  # a bastion gateway: its outputs depend on the role
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
                report = run_audit(target=target, attacks=families, budget=budget, seed=seed, progress=update)
    json_path, html_path = write_audit(report, out)
    recorded = None
    if vault is not None and registry_ref is not None:
        from bastion.governance.evidence import attest_audit

        digest = hashlib.sha256(json_path.read_bytes()).hexdigest()
        note: dict[str, Any] = {**report.summary(), "report_sha256": digest}
        from bastion.vault import ArtifactRef

        exact = ArtifactRef.parse(registry_ref).version is not None
        if exact and hasattr(vault, "context"):  # key ring open, one version: the policy gate counts it
            note = attest_audit(vault, str(ArtifactRef.parse(registry_ref)), note)
        elif hasattr(vault, "context"):
            typer.echo(
                "note: the policy gate counts only audits of an exact NAME:VERSION (this one is recorded, "
                "not attested)",
                err=True,
            )
        vault.annotate(registry_ref, namespace="audit", data=note)
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
        trust_type: list[str] = typer.Option(
            [],
            "--unsafe-trust-type",
            "--trust-type",
            help="Trust this type in a .skops file (unsafe: its code runs on load; review it first). "
            "--trust-type is the deprecated name.",
        ),
        n_classes: int | None = typer.Option(
            None, "--n-classes", help="Number of classes (default: from y)."
        ),
        bearer_env: str | None = typer.Option(
            None,
            "--bearer-env",
            help="Environment variable holding a bearer token for an http(s) --model (e.g. a bastion "
            "gateway token).",
        ),
        models: str | None = typer.Option(
            None,
            "--models",
            help="Audit every registry version whose NAME (or NAME:VERSION, with ':') matches this glob, "
            "one task per version ('digits*', 'digits:*', '*:3').",
        ),
        engine: str | None = typer.Option(
            None, "--engine", help="With --models: local (default), dask or spark."
        ),
        cluster: str | None = typer.Option(
            None, "--cluster", help="With --models: Dask scheduler or Spark master."
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=1, help="With --models: workers of a local pool/cluster."
        ),
        fmt: OutputFormat = FORMAT_OPTION,
        home: Path | None = HOME_OPTION,
    ) -> int:
        """Red-team a model: evasion, membership inference, extraction and poisoning, graded A–F."""
        if models is not None:
            from bastion.cli._audit_many import refuse_single_options, run_many

            if demo or model is not None:
                raise InvalidInput("give one of --demo, --model or --models")
            refuse_single_options(
                **{"--weights": weights, "--unsafe-trust-type": trust_type, "--bearer-env": bearer_env}
            )
            budget, policy = _project_defaults(home, budget, policy)
            return run_many(
                models=models,
                data=data,
                out=out,
                attacks=attacks,
                budget=budget,
                policy=policy,
                seed=seed,
                fmt=fmt,
                target_column=target_column,
                clip=_parse_clip(clip),
                n_classes=n_classes,
                home=home,
                engine=engine,
                cluster=cluster,
                workers=workers,
            )
        if engine is not None or cluster is not None or workers is not None:
            raise InvalidInput("--engine, --cluster and --workers apply to --models")
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
            bearer_env=bearer_env,
        )


__all__ = ["register"]
