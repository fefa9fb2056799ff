"""``bastion keys rotate|retire|list``."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Key-encryption keys per environment.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("rotate")
    def rotate(
        env: list[str] = typer.Option([], "--env", help="Environment(s) to rotate (default: all)."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """New KEK version; every data key of the environment is rewrapped (no artifact re-encrypted)."""
        from bastion.config import ENVIRONMENTS

        with open_vault(home) as vault:
            results = [vault.rotate_keys(env=e) for e in (env or list(ENVIRONMENTS))]
        if fmt is OutputFormat.json:
            print_json(results)
            return
        for r in results:
            others = "".join(f", {n} {label}" for label, n in r.other.items())
            typer.echo(f"{r.env}: KEK v{r.kek_version}, {r.rewrapped} data key(s){others} rewrapped")

    @keys.command("retire")
    def retire(
        env: str = typer.Option(..., "--env", help="Environment."),
        version: int = typer.Option(..., "--version", help="KEK version to retire."),
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Retire an old KEK version (refused, exit 2, naming what still uses it: rotate first)."""
        with open_vault(home) as vault:
            vault.retire_key(env=env, version=version)
        typer.echo(f"retired KEK {env}/v{version}")

    @keys.command("list")
    def list_(home: Path | None = HOME_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
        """List KEK versions per environment."""
        with open_vault(home) as vault:
            infos = vault.list_keys()
        if fmt is OutputFormat.json:
            print_json(infos)
            return
        for k in infos:
            state = "retired" if k.retired else ("current" if k.current else "active")
            typer.echo(f"{k.env}\tv{k.version}\t{state}\t{k.created_at}")
