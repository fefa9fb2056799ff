"""``bastion scan PATH...`` and ``bastion scan convert PATH --to safetensors``.

``scan`` is both a command and a group: a first argument that is not a sub-command name is taken as a path
(``bastion scan model.pt`` runs the hidden ``files`` command). Exit codes: 0 nothing unsafe, 1 findings,
2 could not scan.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from bastion.cli._common import HOME_OPTION, print_json

_DEFAULT_COMMAND = "files"


class ScanFormat(enum.StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class ConvertTarget(enum.StrEnum):
    safetensors = "safetensors"


class _ScanGroup(TyperGroup):
    """A group whose unknown first argument (a path, or an option) routes to the default command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [_DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


def _config(home: Path | None, allow: list[str] | None = None) -> Any:
    import dataclasses
    import logging

    from bastion.config import load_settings
    from bastion.errors import InvalidInput
    from bastion.scan import ScanConfig

    settings = load_settings(home, must_exist=False)
    config = ScanConfig.from_section(settings.section("scan"))
    if allow:
        bad = [
            a
            for a in allow
            if ":" not in a or not all(p.isidentifier() for p in a.replace(":", ".").split("."))
        ]
        if bad:
            raise InvalidInput(f"--allow takes module:qualname (got {bad[0][:80]!r})")
        logging.getLogger("bastion.scan").warning(
            "allow-list extended on the command line: %s", ", ".join(allow)
        )
        config = dataclasses.replace(config, extra_allow=(*config.extra_allow, *allow))
    return config


def _print_text(report: Any) -> None:
    from bastion.scan import printable

    for f in report.files:
        typer.echo(printable(f"{f.verdict.value.upper():6} {f.path} ({f.format})"))
        for issue in f.issues:
            where = f" {issue.member}" if issue.member else ""
            at = f" @{issue.offset}" if issue.offset is not None else ""
            typer.echo(printable(f"  [{issue.severity.value}] {issue.rule}{where}{at}: {issue.message}"))
        for err in f.errors:
            where = f" {err.member}" if err.member else ""
            typer.echo(printable(f"  [error]{where}: {err.message}"))
    counts = {v: sum(1 for f in report.files if f.verdict.value == v) for v in ("safe", "unsafe", "error")}
    typer.echo(
        f"{len(report.files)} file(s): {counts['safe']} safe, {counts['unsafe']} unsafe, "
        f"{counts['error']} could not be scanned"
    )


def register(app: typer.Typer) -> None:
    scan_app = typer.Typer(
        cls=_ScanGroup,
        help="Scan model files without executing them (allow-list pickle analysis, archive checks).\n\n"
        "Usage: bastion scan PATH... [--format text|json|sarif] [--allow MODULE:QUALNAME] [--home DIR]\n\n"
        "PATH: files or directories (scanned recursively). Exit 0 nothing unsafe, 1 findings, 2 could not "
        "scan. 'bastion scan files --help' lists every option.",
        no_args_is_help=True,
    )

    @scan_app.command(_DEFAULT_COMMAND, hidden=True)
    def files(
        paths: list[Path] = typer.Argument(..., help="Files or directories (scanned recursively)."),
        fmt: ScanFormat = typer.Option(ScanFormat.text, "--format", help="text, json or sarif (2.1.0)."),
        allow: list[str] = typer.Option(
            [], "--allow", help="Also allow this exact module:qualname (repeatable; logged as a warning)."
        ),
        home: Path | None = HOME_OPTION,
        engine: str | None = typer.Option(
            None, "--engine", help="Scan one task per file on local, dask or spark (or a bucket: s3://...)."
        ),
        cluster: str | None = typer.Option(None, "--cluster", help="Dask scheduler or Spark master."),
        workers: int | None = typer.Option(None, "--workers", min=1, help="Workers of a local pool/cluster."),
        cache: str | None = typer.Option(
            None, "--cache", help="Reuse verdicts by content digest from this directory or s3:// prefix."
        ),
    ) -> None:
        """Scan PATH... and exit 0 (nothing unsafe), 1 (findings) or 2 (could not scan)."""
        from bastion.compute.objects import as_url
        from bastion.errors import NotFound
        from bastion.scan import scan, to_sarif

        urls = [as_url(p) for p in paths]
        missing = [p for p, u in zip(paths, urls, strict=True) if u is None and not p.exists()]
        if missing:  # a typo in the path: one line, not a report
            raise NotFound(f"no such file or directory: {missing[0]}")
        if any(urls) or engine or cluster or workers or cache:
            from bastion.compute import make_executor
            from bastion.compute.models import scan_models

            with make_executor(engine=engine or "local", cluster=cluster, workers=workers) as executor:
                report, _ = scan_models(
                    paths=[u or p for p, u in zip(paths, urls, strict=True)],
                    executor=executor,
                    config=_config(home, allow),
                    cache=cache,
                )
        else:
            report = scan(paths=paths, config=_config(home, allow))
        if fmt is ScanFormat.json:
            print_json(report.to_dict())
        elif fmt is ScanFormat.sarif:
            sys.stdout.write(json.dumps(to_sarif(report), indent=2) + "\n")
        else:
            _print_text(report)
        raise typer.Exit(report.exit_code)

    @scan_app.command("convert")
    def convert_cmd(
        path: Path = typer.Argument(..., help="A torch state dict (zip or legacy format)."),
        to: ConvertTarget = typer.Option(..., "--to", help="Target format."),
        out: Path | None = typer.Option(
            None, "--out", help="Output file (default: PATH with the new suffix)."
        ),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Convert a torch state dict to safetensors after a clean scan."""
        from bastion.scan import convert

        dst = out if out is not None else path.with_suffix(".safetensors")
        result = convert(src=path, dst=dst, config=_config(home))
        typer.echo(f"wrote {result.dst} ({result.tensors} tensors, {result.bytes} bytes)")

    app.add_typer(scan_app, name="scan")


__all__ = ["register"]
