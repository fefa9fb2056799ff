"""``bastion hunt``: Sigma rules (mapped to MITRE ATLAS) and an anomaly score over the event store.

Each finding goes through the responder's evidence check (its events must re-derive from the signed audit
log): one that does not is marked ``REFUSED`` with the reason (JSON: ``"evidence"``), never shown as a
plain finding; the responder does not act on it.

Exit codes: 0 no findings, 1 findings (refused ones included: the event store was edited), 2 usage or
runtime error.
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
        from bastion.events.verify import EvidenceVerifier
        from bastion.hunt import hunt

        start = parse_since(since)
        with open_vault(home) as vault:
            store = open_store(vault)
            try:
                checker = EvidenceVerifier(log=vault, store=store)
                report = hunt(
                    store=store,
                    since=start,
                    rules=rules,
                    anomaly=not no_anomaly,
                    verify=lambda ids: checker.check(ids) is None,
                )
                refused = {
                    f.key: why
                    for f in report.findings
                    if (
                        why := checker.check(f.event_ids, identity=f.identity, client=f.client, model=f.model)
                    )
                    is not None
                }
            finally:
                store.close()
        if fmt is OutputFormat.json:
            doc = report.to_dict()
            for f, shown in zip(report.findings, doc["findings"], strict=True):
                shown["evidence"] = f"refused: {refused[f.key]}" if f.key in refused else "verified"
            print_json(doc)
        else:
            typer.echo(f"{report.events} events, {len(report.rules)} rules, {report.elapsed_s:.2f} s")
            for f in report.findings:
                who = f.identity if f.identity != "-" else f.client
                tech = ",".join(f.techniques) or "-"
                mark = "REFUSED " if f.key in refused else ""
                typer.echo(
                    f"{mark}{f.severity:<8} {_when(f.first_seen)}  {who:<20} {tech:<28} {f.title} ({f.count})"
                )
                if f.key in refused:
                    typer.echo(f"         evidence refused: {refused[f.key]}")
                if f.features:
                    typer.echo(
                        "         features: " + ", ".join(f"{n}={v} (z={z})" for n, v, z in f.features)
                    )
            if not report.findings:
                typer.echo("no findings")
        if report.findings:
            raise typer.Exit(EXIT_FINDING)
