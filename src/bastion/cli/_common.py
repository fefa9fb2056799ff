"""Helpers shared by the command modules: output formats, JSON printing, opening the vault.

Remote mode: with ``$BASTION_URL`` set, :func:`open_vault` returns a :class:`bastion.client.RemoteVault`
(token from ``$BASTION_TOKEN``, else the one ``bastion login`` saved for that URL; CA from ``$BASTION_CA`` or
the login), and only the commands in :data:`REMOTE_COMMANDS` run: every other command needs the key ring or
the database on this machine and is refused before it starts (:func:`refuse_local_only`), never run against
local keys. A command group that gains a server endpoint adds its subcommands there.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from bastion.errors import BastionError, ConfigError
from bastion.report.document import to_jsonable


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"


FORMAT_OPTION = typer.Option(OutputFormat.text, "--format", help="Output format.")
HOME_OPTION = typer.Option(None, "--home", help="Project home (default: $BASTION_HOME or ./.bastion).")
WITNESS_OPTION = typer.Option(
    None,
    "--witness",
    help="A witness of the audit log named from outside the home (FILE or URL,key=PEM[,ca=PEM]; repeatable; "
    "also $BASTION_WITNESS): a rolled-back home is refused even when its bastion.toml lost [[log.witness]].",
)
REQUIRE_WITNESS_OPTION = typer.Option(
    False, "--require-witness", help="Refuse to start without a witness (also $BASTION_REQUIRE_WITNESS=1)."
)


def outside_witnesses(witness: list[str] | None, require: bool, home: Path | None) -> None:
    """``--witness``/``--require-witness``: checked now, then seen by every rollback check of the process."""
    from bastion.config import home_path
    from bastion.respond.rollback import name_outside_witnesses

    name_outside_witnesses(list(witness or []), require=require, home=home_path(home))


def print_json(obj: Any) -> None:
    """Print one JSON document to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


T = TypeVar("T")


def emit(
    fmt: OutputFormat,
    result: T,
    lines: Callable[[T], Iterable[str]],
    *,
    as_json: Callable[[T], Any] | None = None,
) -> None:
    """Print a command's ``result``: as JSON (``as_json(result)``, default the result itself) or as the
    text ``lines(result)``, one per line."""
    if fmt is OutputFormat.json:
        print_json(result if as_json is None else as_json(result))
        return
    for line in lines(result):
        typer.echo(line)


def vault_answer(
    home: Path | None,
    fmt: OutputFormat,
    call: Callable[[Any], T],
    lines: Callable[[T], Iterable[str]],
    *,
    as_json: Callable[[T], Any] | None = None,
) -> None:
    """Open the vault (local or remote: :func:`open_vault`), ask it ``call(vault)``, close it, and
    :func:`emit` the answer."""
    with open_vault(home) as vault:
        result = call(vault)
    emit(fmt, result, lines, as_json=as_json)


def is_remote(vault: Any) -> bool:
    """Whether ``vault`` is a server's (``$BASTION_URL``), not this machine's home."""
    return bool(getattr(vault, "remote", False))


def local_only(vault: Any, message: str, *, error: type[BastionError] = ConfigError) -> None:
    """Refuse (``error(message)``) on a server's vault what needs the key ring, database or blobs here."""
    if is_remote(vault):
        raise error(message)


URL_ENV = "BASTION_URL"
CA_ENV = "BASTION_CA"

# Commands that run against a server when $BASTION_URL is set: group -> subcommands (None: all of them).
REMOTE_COMMANDS: Mapping[str, frozenset[str] | None] = {
    "registry": None,
    "access": frozenset({"grant", "revoke", "list"}),
    "token": None,
    "keys": None,
    "log": None,
    "login": None,
    "logout": None,
    "witness": None,  # a witness has its own directory, no home
    "data": frozenset({"protect", "reveal"}),  # bastion.client.data: the server holds the scope keys
    "privacy": frozenset({"budget"}),  # the server's ledger (bastion.client.data.RemoteLedger)
    "serve": None,  # serve MODEL takes its model from $BASTION_URL with a workload token (--server)
}


def remote_url() -> str | None:
    """``$BASTION_URL`` when remote mode is on (set and non-empty; set but blank is an error)."""
    if URL_ENV not in os.environ:
        return None
    url = os.environ[URL_ENV]
    if not url.strip():
        raise ConfigError(f"${URL_ENV} is set but empty: unset it for local mode, or give https://HOST:PORT")
    return url


def refuse_local_only(args: Sequence[str]) -> None:
    """With ``$BASTION_URL`` set, refuse (exit 2, naming it) a command that needs local keys or database."""
    if remote_url() is None or "--help" in args or "-h" in args:
        return
    words = [a for a in args if not a.startswith("-")][:2]
    if not words:
        return
    group, sub = words[0], (words[1] if len(words) > 1 else None)
    if group in REMOTE_COMMANDS:
        subs = REMOTE_COMMANDS[group]
        if subs is None or sub is None or sub in subs:
            return
    name = " ".join(w for w in (group, sub) if w and group not in ("login", "logout"))
    raise ConfigError(
        f"'bastion {name}' needs the local key ring or database: it does not run with ${URL_ENV} set",
        hint=f"unset {URL_ENV} to run it in local mode on the machine that holds the home",
    )


def open_vault(home: Path | None = None, **kwargs: Any) -> Any:
    """Open the project's vault as the CLI's caller: the server's (``$BASTION_URL``) as the token's identity,
    else the local home's (``$BASTION_TOKEN`` identity, else the local owner)."""
    url = remote_url()
    if url is not None:
        return open_remote(url, home=home, **kwargs)
    from bastion.vault import open_vault as _open

    return _open(home=home, **kwargs)


def open_remote(url: str, *, home: Path | None = None, **kwargs: Any) -> Any:
    """The RemoteVault for ``url`` (token: ``$BASTION_TOKEN``, else the saved login)."""
    from bastion.access.control import token_id
    from bastion.client import check_url, connect
    from bastion.client.credentials import saved_login
    from bastion.config import TOKEN_ENV

    if home is not None:
        raise ConfigError(f"--home names a local project: it cannot be used with ${URL_ENV} set")
    if kwargs:
        raise ConfigError(
            f"this command needs the local vault ({', '.join(sorted(kwargs))}): unset {URL_ENV}"
        )
    url = check_url(url)
    saved = saved_login(url) or {}
    if TOKEN_ENV in os.environ:  # set: it is used or refused, never passed over for the saved one
        token = os.environ[TOKEN_ENV]
        if not token.strip():
            raise ConfigError(
                f"${TOKEN_ENV} is set but empty: give a token, or unset it to use a saved login"
            )
        if token_id(token) is None:
            raise ConfigError(f"${TOKEN_ENV} is not a bastion API token (bst_<id>.<secret>)")
    elif "token" in saved:
        token = saved["token"]
    else:
        raise ConfigError(
            f"no token for {url}: set ${TOKEN_ENV} or run 'bastion login --url {url}'",
        )
    ca = os.environ.get(CA_ENV) or saved.get("ca")
    return connect(url, token=token, ca=ca)
