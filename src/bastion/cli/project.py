"""``bastion init`` and ``bastion status``."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        home: Path | None = HOME_OPTION,
        database_url: str | None = typer.Option(
            None, "--database-url", help="Metadata database URL (default: SQLite in the home)."
        ),
        default_env: str = typer.Option(
            "dev", "--default-env", help="Environment a push goes to by default."
        ),
    ) -> None:
        """Create a project home: key ring, signing keys, database, blob store and the owner (admin)."""
        from bastion.config import get_passphrase
        from bastion.vault import init_project

        passphrase = get_passphrase(confirm=True)
        with init_project(
            home=home, passphrase=passphrase, database_url=database_url, default_env=default_env
        ) as vault:
            typer.echo(f"initialised bastion project at {vault.settings.home}")

    @app.command("status")
    def status(home: Path | None = HOME_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        """Show the project home, the acting identity and the audit log size."""
        with open_vault(home) as vault:
            info = {
                "home": str(vault.settings.home),
                "database": vault.engine.url.render_as_string(hide_password=True),
                "identity": vault.identity.to_dict(),
                "audit_log_size": vault.audit.size(),
            }
        if fmt is OutputFormat.json:
            print_json(info)
            return
        typer.echo(f"home:      {info['home']}")
        typer.echo(f"database:  {info['database']}")
        typer.echo(f"identity:  {vault.identity.name} ({vault.identity.role})")
        typer.echo(f"audit log: {info['audit_log_size']} entries")
