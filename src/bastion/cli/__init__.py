"""The ``bastion`` command line: a thin Typer face over the library.

Each command group lives in its own module here and exposes ``register(app)``. Commands parse, call the
library, print and return an exit code; they hold no logic a library user would miss.

Exit codes (documented in the README, checked by tests/cli/test_exit_codes.py):

* 0 — success, nothing found
* 1 — a finding or a policy violation (tampering, unsafe file, failed gate)
* 2 — a usage or runtime error (bad arguments, missing home, wrong passphrase, denied access, …)
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click
import typer

from bastion import __version__
from bastion.errors import BastionError

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ERROR = 2

# Command-group modules, in help order. Each defines ``register(app: typer.Typer) -> None``.
GROUP_MODULES: tuple[str, ...] = (
    "project",  # init, status
    "keys",
    "registry",
    "access",
    "token",
    "log",
    "scan",
    "data",
    "lineage",
    "train",
    "privacy",
    "federate",
    "he",
    "audit",
    "watermark",
    "serve",
    "guard",
    "governance",  # inventory, check, bom, threat-model, check-deploy
    "witness",  # init, serve, key: countersigns the audit log's heads outside the home
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"bastion {__version__}")
        raise typer.Exit(EXIT_OK)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="bastion",
        help="Secure an ML model as routinely as you test it.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """bastion: data protection, private ML, adversarial audits, a signed registry and a gateway."""

    for name in GROUP_MODULES:
        try:
            module = importlib.import_module(f"bastion.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bastion.cli.{name}":
                continue  # group not built in this checkout
            raise
        module.register(app)
    return app


def _print_error(message: str, hint: str | None = None) -> None:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bastion`` script. Returns (and exits with) the exit code."""
    code = run(argv)
    sys.exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code without exiting (used by tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app = build_app()
        command = typer.main.get_command(app)
        result = command.main(args=args, prog_name="bastion", standalone_mode=False)
        if isinstance(result, int):
            return result
        return EXIT_OK
    except BastionError as exc:
        _print_error(str(exc), exc.hint)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        _print_error("aborted")
        return EXIT_ERROR
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("BASTION_DEBUG"):
            raise
        _print_error(f"internal error ({type(exc).__name__}): {exc}", "set BASTION_DEBUG=1 for a traceback")
        return EXIT_ERROR


__all__ = ["EXIT_ERROR", "EXIT_FINDING", "EXIT_OK", "build_app", "main", "run"]
