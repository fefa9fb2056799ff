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
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Remove scopes (exact text); with neither --model nor --env, disable the identity and its tokens.

        Exit 2 when the identity holds none of the scopes given (nothing is changed).
        """
        with open_vault(home) as vault:
            result = vault.access.revoke_scopes(name=name, models=model, envs=env)
        if fmt is OutputFormat.json:
            print_json(result)
            return
        if result.identity is None:
            typer.echo(f"revoked {name} (identity disabled, all its tokens revoked)")
            return
        removed = [f"model {m}" for m in result.removed_models] + [f"env {e}" for e in result.removed_envs]
        typer.echo(f"{name}: removed {', '.join(removed)}")
        not_held = [f"model {m}" for m in result.not_held_models] + [f"env {e}" for e in result.not_held_envs]
        if not_held:
            typer.echo(f"{name}: not held, nothing removed for {', '.join(not_held)}")
        ident = result.identity
        typer.echo(
            f"{name} ({ident.role}) now: models {', '.join(ident.models) or '-'}; "
            f"envs {', '.join(ident.envs) or '-'}"
        )

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

    @access.command("seal")
    def seal(
        yes: bool = typer.Option(False, "--yes", help="Seal them (after checking them with `access list`)."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """List authorization state (identities, version pointers, versions) that is unsealed or was changed
        outside bastion; --yes seals it.

        Owner only (the passphrase holder, no BASTION_TOKEN): the migration step for homes from before seals.
        Exit 1 while any remain unsealed without --yes.
        """
        from bastion.errors import IntegrityError
        from bastion.privacy.ledger import ledger_for_vault

        with open_vault(home) as vault:
            if not yes:
                names = vault.unsealed_state()
                names += [f"privacy:{d}" for d in ledger_for_vault(vault).unsealed()]
                if names:
                    raise IntegrityError(
                        f"unsealed or changed authorization state: {', '.join(names)} "
                        "(check `bastion access list`, then run `bastion access seal --yes`)"
                    )
                typer.echo("all authorization state is sealed (identities, version pointers, versions)")
                return
            names = vault.seal_state()  # owner only: refused before anything below runs
            names += [f"privacy:{d}" for d in ledger_for_vault(vault).seal_all()]
        typer.echo(f"sealed {len(names)}: {', '.join(names) or '-'}")
