"""``bastion inventory``, ``check``, ``bom``, ``threat-model`` and ``check-deploy``."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import HOME_OPTION, open_vault, print_json
from bastion.errors import InvalidInput

EXIT_FINDING = 1


class InventoryFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class CheckFormat(enum.StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class ThreatFormat(enum.StrEnum):
    md = "md"
    html = "html"
    json = "json"


def _emit_report(report: object, fmt: CheckFormat, out: Path | None) -> None:
    from bastion.governance.findings import CheckReport

    assert isinstance(report, CheckReport)
    if fmt is CheckFormat.sarif:
        text = json.dumps(report.to_sarif(), indent=2, sort_keys=True) + "\n"
    elif fmt is CheckFormat.json:
        text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    else:
        text = report.text() + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        if fmt is not CheckFormat.text:
            typer.echo(report.text().splitlines()[-1], err=True)
    else:
        sys.stdout.write(text)


def register(app: typer.Typer) -> None:
    register_threat(app)
    register_deploy(app)

    @app.command("inventory")
    def inventory_(
        kind: str | None = typer.Option(None, "--kind", help="model, dataset or deployment."),
        home: Path | None = HOME_OPTION,
        fmt: InventoryFormat = typer.Option(InventoryFormat.table, "--format", help="Output format."),
    ) -> None:
        """Every model, dataset and deployment with its signature, scan, audit, ε and watermark evidence."""
        from bastion.governance.inventory import inventory, to_csv, to_table

        if kind not in (None, "model", "dataset", "deployment"):
            raise InvalidInput("--kind must be model, dataset or deployment")
        with open_vault(home) as vault:
            entries = inventory(vault=vault, kind=None if kind == "deployment" else kind)
        if kind == "deployment":
            entries = tuple(e for e in entries if e.kind == "deployment")
        if fmt is InventoryFormat.json:
            print_json([e.to_dict() for e in entries])
        elif fmt is InventoryFormat.csv:
            sys.stdout.write(to_csv(entries))
        else:
            typer.echo(to_table(entries))

    @app.command("check")
    def check(
        targets: list[str] = typer.Argument(None, help="NAME[:VERSION] in the registry, or a code PATH."),
        all_models: bool = typer.Option(False, "--all", help="Also check every model version."),
        env: str | None = typer.Option(None, "--env", help="Judge against this environment's policy."),
        no_bandit: bool = typer.Option(False, "--no-bandit", help="Skip the bandit engine on code."),
        home: Path | None = HOME_OPTION,
        fmt: CheckFormat = typer.Option(CheckFormat.text, "--format", help="Output format."),
        out: Path | None = typer.Option(None, "--out", help="Write the report here instead of stdout."),
    ) -> int:
        """Evaluate the bastion.toml policy on registry versions and review code (exit 1 on a violation).

        Without a target every model version is checked."""
        from bastion.governance.code import review_code
        from bastion.governance.findings import merge
        from bastion.governance.policy import check_versions

        items = list(targets or [])
        paths = [t for t in items if Path(t).exists()]
        refs = [t for t in items if t not in paths]
        reports = []
        if paths:
            reports.append(review_code(paths=paths, use_bandit=not no_bandit))
        if refs or all_models or not items:
            with open_vault(home) as vault:
                reports.append(
                    check_versions(vault=vault, refs=None if (all_models or not items) else refs, env=env)
                )
        report = merge(reports)
        _emit_report(report, fmt, out)
        return 0 if report.ok else EXIT_FINDING

    @app.command("bom")
    def bom(
        ref: str = typer.Argument(..., help="NAME or NAME:VERSION of a model."),
        out: Path | None = typer.Option(None, "--out", help="Write the BOM here (default: stdout)."),
        card: Path | None = typer.Option(
            None,
            "--card",
            help="YAML/JSON with users, use_cases, ethical_considerations, fairness, limitations.",
        ),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """A CycloneDX 1.6 ML-BOM with a model card, validated against the 1.6 schema before it is written."""
        from bastion.governance.bom import build_bom

        card_data = _read_mapping(card) if card is not None else None
        with open_vault(home) as vault:
            doc = build_bom(vault=vault, ref=ref, card=card_data)
        text = json.dumps(doc, indent=2) + "\n"
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out} (CycloneDX 1.6, {len(doc.get('components', []))} components)", err=True)


def _read_mapping(path: Path) -> dict[str, object]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: not a readable YAML/JSON file") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: must hold a mapping")
    return data


def register_threat(app: typer.Typer) -> None:
    @app.command("threat-model")
    def threat_model_(
        system: Path | None = typer.Argument(None, help="SYSTEM.yaml describing the system."),
        from_inventory: str | None = typer.Option(
            None, "--from-inventory", help="Write a starting SYSTEM.yaml for this model instead."
        ),
        fmt: ThreatFormat = typer.Option(ThreatFormat.md, "--format", help="Output format."),
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Threats mapped to MITRE ATLAS and OWASP ML/LLM Top 10, with each control's measured status."""
        import yaml

        from bastion.governance.threat import (
            evidence_for,
            parse_system,
            render,
            system_from_inventory,
            threat_model,
        )

        if (system is None) == (from_inventory is None):
            raise InvalidInput("give SYSTEM.yaml or --from-inventory NAME (one of them)")
        if from_inventory is not None:
            with open_vault(home) as vault:
                doc = system_from_inventory(vault=vault, name=from_inventory)
            text = "# Starting point written by bastion from the registry: review every line.\n"
            text += yaml.safe_dump(doc, sort_keys=False)
        else:
            assert system is not None
            parsed = parse_system(_read_mapping(system))
            with open_vault(home) as vault:
                model = threat_model(system=parsed, evidence=evidence_for(vault=vault, system=parsed))
            text = render(model, fmt.value)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out}", err=True)


def register_deploy(app: typer.Typer) -> None:
    @app.command("check-deploy")
    def check_deploy_(
        files: list[Path] = typer.Argument(..., help="Kubernetes manifests and Dockerfiles."),
        sbom: Path | None = typer.Option(None, "--sbom", help="A CycloneDX SBOM of the image to match."),
        rootfs: Path | None = typer.Option(
            None, "--rootfs", help="An unpacked image filesystem: build its SBOM."
        ),
        advisories: Path | None = typer.Option(
            None, "--advisories", help="A directory of OSV JSON advisories."
        ),
        sbom_out: Path | None = typer.Option(None, "--sbom-out", help="Write the SBOM built from --rootfs."),
        checkov: str | None = typer.Option(
            None, "--checkov", help="checkov executable (own venv): a second, advisory engine merged in."
        ),
        fmt: CheckFormat = typer.Option(CheckFormat.text, "--format", help="Output format."),
        out: Path | None = typer.Option(None, "--out", help="Write the report here instead of stdout."),
    ) -> int:
        """Check deployment files (and an image SBOM against OSV advisories); exit 1 on a violation."""
        from bastion.governance.deploy import check_deploy
        from bastion.governance.findings import merge

        reports = [check_deploy(paths=files)]
        if checkov is not None:
            from bastion.governance import CheckovEngine

            reports.append(CheckovEngine(checkov).check(files))
        if sbom is not None or rootfs is not None:
            from bastion.governance.osv import check_sbom, load_advisories, read_sbom, sbom_from_rootfs

            if advisories is None:
                raise InvalidInput("--sbom/--rootfs need --advisories DIR (OSV JSON files)")
            doc: Mapping[str, Any]
            if rootfs is not None:
                doc = sbom_from_rootfs(rootfs)
                if sbom_out is not None:
                    sbom_out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            else:
                assert sbom is not None
                doc = read_sbom(sbom)
            reports.append(
                check_sbom(doc, advisories=load_advisories(advisories), source=str(rootfs or sbom))
            )
        report = merge(reports)
        _emit_report(report, fmt, out)
        return 0 if report.ok else EXIT_FINDING
