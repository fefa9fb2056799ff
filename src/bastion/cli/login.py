"""``bastion login|logout``: save (0600) or forget the token for a ``bastion server`` URL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from bastion.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("login")
    def login(
        url: str = typer.Option(..., "--url", help="The server, https://HOST:PORT."),
        ca: Path | None = typer.Option(
            None, "--ca", help="CA certificate (PEM) for a private or self-signed CA."
        ),
        token_stdin: bool = typer.Option(False, "--token-stdin", help="Read the token from standard input."),
    ) -> None:
        """Check a token against the server and save it for URL (~/.config/bastion/credentials, mode 0600).

        The token comes from $BASTION_TOKEN, --token-stdin, or a prompt (never a command-line argument).
        Afterwards, with BASTION_URL=URL set, commands use it without BASTION_TOKEN.
        """
        import getpass

        from bastion.client import check_url, connect
        from bastion.client.credentials import save_login
        from bastion.config import TOKEN_ENV

        url = check_url(url)
        if token_stdin:
            token = sys.stdin.readline().strip()
        elif TOKEN_ENV in os.environ:
            token = os.environ[TOKEN_ENV]
        elif os.isatty(0):
            token = getpass.getpass("bastion token: ")
        else:
            raise ConfigError(f"no token: set ${TOKEN_ENV}, pass --token-stdin, or run interactively")
        ca_given = str(ca) if ca is not None else os.environ.get("BASTION_CA")
        ca_path = None if not ca_given else str(Path(ca_given).expanduser().resolve())
        with connect(url, token=token, ca=ca_path) as vault:
            ident = vault.identity
        path = save_login(url, token=token, ca=ca_path)
        typer.echo(f"logged in to {url} as {ident.name} ({ident.role}); token saved in {path}")

    @app.command("logout")
    def logout(
        url: str | None = typer.Option(None, "--url", help="The server to forget (default: every one)."),
    ) -> None:
        """Forget the saved token for URL (or all saved tokens). The token itself stays valid: revoke it with
        'bastion token revoke' to end it."""
        from bastion.client import check_url
        from bastion.client.credentials import remove_login

        gone = remove_login(None if url is None else check_url(url))
        typer.echo(f"logged out of {', '.join(gone)}" if gone else "no saved login to remove")
