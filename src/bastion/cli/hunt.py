"""``bastion hunt``: Sigma rules (mapped to MITRE ATLAS) and an anomaly score over the event store.

Exit codes: 0 no findings, 1 findings, 2 usage or runtime error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from bastion.cli import EXIT_FINDING
from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json
from bastion.cli.events import SINCE_HELP, open_store, parse_since


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer) -> None:
    @app.command("hunt")
    def hunt_command(
        since: str | None = typer.Option(None, "--since", help=SINCE_HELP),
        rules: Path | None = typer.Option(
            None, "--rules", help="A directory of Sigma rules (*.yml) instead of the pack."
        ),
        no_anomaly: bool = typer.Option(False, "--no-anomaly", help="Rules only, no anomaly score."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Hunt the event store (new audit-log entries are collected first).

        Exit codes: 0 nothing found, 1 findings, 2 usage or runtime error.
        """
        from bastion.hunt import hunt, verifier_for

        start = parse_since(since)
        with open_vault(home) as vault:
            store = open_store(vault)
            try:
                report = hunt(
                    store=store,
                    since=start,
                    rules=rules,
                    anomaly=not no_anomaly,
                    verify=verifier_for(vault, store),
                )
            finally:
                store.close()
        if fmt is OutputFormat.json:
            print_json(report.to_dict())
        else:
            typer.echo(f"{report.events} events, {len(report.rules)} rules, {report.elapsed_s:.2f} s")
            for f in report.findings:
                who = f.identity if f.identity != "-" else f.client
                tech = ",".join(f.techniques) or "-"
                typer.echo(
                    f"{f.severity:<8} {_when(f.first_seen)}  {who:<20} {tech:<28} {f.title} ({f.count})"
                )
                if f.features:
                    typer.echo(
                        "         features: " + ", ".join(f"{n}={v} (z={z})" for n, v, z in f.features)
                    )
            if not report.findings:
                typer.echo("no findings")
        if report.findings:
            raise typer.Exit(EXIT_FINDING)
