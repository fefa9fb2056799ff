"""``bastion token create|revoke|list``."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json


def register(app: typer.Typer) -> None:
    token = typer.Typer(help="API tokens (shown once, stored only as salted hashes).", no_args_is_help=True)
    app.add_typer(token, name="token")

    @token.command("create")
    def create(
        name: str | None = typer.Option(
            None, "--name", help="Identity name (created if new; default ROLE-MODEL, e.g. consumer-digits)."
        ),
        role: str = typer.Option(..., "--role", help="Role of the identity."),
        model: list[str] = typer.Option([], "--model", help="Model name glob, repeatable."),
        env: list[str] = typer.Option([], "--env", help="Environment, repeatable."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Create a token; it is printed once on stdout and cannot be shown again."""
        if name is None:  # the shortest form works: a name derived from the role and the first model
            import re

            name = re.sub(r"[^A-Za-z0-9._@+-]+", "-", "-".join([role, *model[:1]])).strip("-") or role
        with open_vault(home) as vault:
            ident, secret = vault.create_token(name=name, role=role, models=model, envs=env)
        if fmt is OutputFormat.json:
            print_json({"identity": ident, "token": secret})
            return
        typer.echo(f"token for {ident.name} ({ident.role}); store it now, it is not shown again:", err=True)
        typer.echo(secret)

    @token.command("revoke")
    def revoke(
        token_id: str = typer.Argument(
            ...,
            help="Token id as 'token list' shows it (between 'bst_' and '.'; legacy-… for old tokens).",
        ),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Revoke a token by its id."""
        with open_vault(home) as vault:
            vault.access.revoke_token(token_id)
        typer.echo(f"revoked token {token_id}")

    @token.command("list")
    def list_(home: Path | None = HOME_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        """List token ids (never the secrets)."""
        with open_vault(home) as vault:
            found = vault.access.list_tokens()
        if fmt is OutputFormat.json:
            print_json(found)
            return
        for t in found:
            typer.echo(
                f"{t.id}\t{t.identity}\t{t.role}\t{t.created_at}\t{'revoked' if t.revoked else 'active'}"
            )
