"""``bastion audit --models GLOB``: one audit per registry model version, in parallel.

Exit codes follow the single audit: 0 every version audited (and within ``--policy``); 1 a policy violation
on some version (all audited); 2 some version could not be audited (pulled, loaded or run), or a usage error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import OutputFormat, print_json
from bastion.errors import InvalidInput, NotFound, PolicyViolation


def refuse_single_options(**given: Any) -> None:
    """Options of ``audit --model`` that ``--models`` does not take: one line naming the first."""
    for option, value in given.items():
        if value:
            raise InvalidInput(f"--models does not take {option} (registry versions only)")


def run_many(
    *,
    models: str,
    data: Path | None,
    out: Path,
    attacks: str,
    budget: str,
    policy: Path | None,
    seed: int,
    fmt: OutputFormat,
    target_column: str,
    clip: tuple[float, float] | None,
    n_classes: int | None,
    home: Path | None,
    engine: str | None,
    cluster: str | None,
    workers: int | None,
) -> int:
    from bastion.adversarial.loading import load_data
    from bastion.adversarial.policy import check_policy, load_policy
    from bastion.cli._common import open_vault
    from bastion.compute import make_executor
    from bastion.compute.audits import AuditSettings, VersionAudit, audit_models
    from bastion.governance.evidence import attest_audit
    from bastion.report.audit import write_audit

    if data is None:
        raise InvalidInput("--models needs --data (.npz with x, y or a .csv with a target column)")
    gate = load_policy(policy) if policy is not None else None
    ds = load_data(data, target=target_column)
    families = tuple(a.strip() for a in attacks.split(",") if a.strip())
    settings = AuditSettings(attacks=families, budget=budget, seed=seed, clip=clip, n_classes=n_classes)
    violations: dict[str, list[str]] = {}

    def record(done: VersionAudit) -> dict[str, str]:
        """Driver side: the report files, the attested ``audit`` annotation, the policy check."""
        assert done.report is not None
        name, version = done.ref.rsplit(":", 1)
        json_path, html_path = write_audit(done.report, out / f"{name}-{version}")
        digest = hashlib.sha256(json_path.read_bytes()).hexdigest()
        note = attest_audit(vault, done.ref, {**done.report.summary(), "report_sha256": digest})
        vault.annotate(done.ref, namespace="audit", data=note)
        if gate is not None:
            violations[done.ref] = [str(v) for v in check_policy(done.report, gate)]
        return {"report_json": str(json_path), "report_html": str(html_path)}

    vault = open_vault(home)
    try:
        from bastion.compute.audits import match_versions

        if hasattr(vault, "context") and not match_versions(vault.list(kind="model"), models):
            raise NotFound(f"no model version matches {models!r}")  # before any worker starts
        with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
            run = audit_models(
                vault=vault, models=models, data=ds, executor=executor, settings=settings, record=record
            )
    finally:
        vault.close()
    rows = [
        {**v.to_dict(), **(v.recorded or {}), "violations": violations.get(v.ref, [])} for v in run.versions
    ]
    if fmt is OutputFormat.json:
        print_json(
            {"pattern": run.pattern, "engine": run.engine, "versions": rows, "failed": len(run.failed)}
        )
    else:
        for r in rows:
            status = f"grade {r['grade']}" if r["error"] is None else f"FAILED ({r['error']})"
            where = f"  {r['report_json']}" if r.get("report_json") else ""
            typer.echo(f"{r['ref']}: {status}{where}")
            for v in r["violations"]:
                typer.echo(f"  policy violation: {v}")
    if run.failed:
        typer.echo(
            f"error: {len(run.failed)} of {len(run.versions)} version(s) not audited: "
            + ", ".join(v.ref for v in run.failed),
            err=True,
        )
        return 2
    broken = [ref for ref, vs in violations.items() if vs]
    if broken:
        raise PolicyViolation(f"policy violation(s) on {len(broken)} version(s): {', '.join(broken)}")
    return 0


__all__ = ["refuse_single_options", "run_many"]
