"""``bastion access grant|revoke|list``."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json


def register(app: typer.Typer) -> None:
    access = typer.Typer(help="Identities, roles and their model/environment scopes.", no_args_is_help=True)
    app.add_typer(access, name="access")

    @access.command("grant")
    def grant(
        name: str = typer.Argument(..., help="Identity name."),
        role: str | None = typer.Option(None, "--role", help="Role (needed to create a new identity)."),
        model: list[str] = typer.Option([], "--model", help="Model name glob, repeatable."),
        env: list[str] = typer.Option([], "--env", help="Environment, repeatable."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Create an identity or widen its scopes (admin only)."""
        with open_vault(home) as vault:
            ident = vault.access.grant(name=name, role=role, models=model, envs=env)
        if fmt is OutputFormat.json:
            print_json(ident)
        else:
            typer.echo(
                f"{ident.name} ({ident.role}): models {', '.join(ident.models)}; envs {', '.join(ident.envs)}"
            )

    @access.command("revoke")
    def revoke(
        name: str = typer.Argument(..., help="Identity name."),
        model: list[str] = typer.Option([], "--model", help="Model glob to remove, repeatable."),
        env: list[str] = typer.Option([], "--env", help="Environment to remove, repeatable."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Remove scopes; with neither --model nor --env, disable the identity and its tokens."""
        with open_vault(home) as vault:
            ident = vault.access.revoke(name=name, models=model, envs=env)
        typer.echo(f"revoked {name}" if ident is None else f"{name}: scopes removed")

    @access.command("list")
    def list_(home: Path | None = HOME_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        """List identities with their roles and scopes."""
        with open_vault(home) as vault:
            found = vault.access.list_identities()
        if fmt is OutputFormat.json:
            print_json(found)
            return
        for i in found:
            typer.echo(f"{i.name}\t{i.role}\tmodels={','.join(i.models)}\tenvs={','.join(i.envs)}")
