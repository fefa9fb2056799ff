"""``bastion ui``: the read-only dashboard (auditor role and above), over TLS like the gateway."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import HOME_OPTION


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        port: int = typer.Option(8443, "--port", help="Port to bind (0: any free port, printed)."),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        insecure: bool = typer.Option(
            False, "--insecure", help="Plain HTTP; allowed only on a loopback address."
        ),
        reports: list[Path] = typer.Option(
            [], "--reports", help="Directory of audit report.json files to plot (repeatable)."
        ),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Serve the read-only dashboard: inventory, lineage, audits, alerts, hunting, drift, log state.

        Sign in with an auditor or admin API token; without TLS files a self-signed certificate is made in
        the home. Runs until interrupted."""
        from bastion.ui import UIOptions, run

        options = UIOptions(
            home=str(home) if home else None,
            host=host,
            port=port,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            insecure=insecure,
            reports=tuple(str(r) for r in reports),
        )
        run(options, announce=lambda url: typer.echo(f"bastion dashboard on {url}", err=True))
