"""The ``bastion`` command line: a thin Typer face over the library.

Each command group lives in its own module here and exposes ``register(app)``. Commands parse, call the
library, print and return an exit code; they hold no logic a library user would miss.

Exit codes (documented in the README, checked by tests/cli/test_exit_codes.py):

* 0 — success, nothing found
* 1 — a finding or a policy violation (tampering, unsafe file, failed gate)
* 2 — a usage or runtime error (bad arguments, missing home, wrong passphrase, denied access, …)
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence

import click
import typer

from bastion import __version__
from bastion.errors import BastionError, NotFound

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
    "events",  # collect, export (JSON lines, OCSF)
    "hunt",  # Sigma rules + anomaly score over the events
    "respond",  # playbooks: act on findings, once or --watch
    "server",  # the control plane over HTTPS (team mode)
    "login",  # login, logout: a saved token for $BASTION_URL
    "ui",  # the read-only dashboard
    "demo",  # the whole lifecycle on built-in data
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


# Import names whose distribution is spelled differently (the rest map by replacing "_" with "-").
_DISTRIBUTION_OF = {
    "yaml": "pyyaml",
    "jwt": "pyjwt",
    "sklearn": "scikit-learn",
    "cyclonedx": "cyclonedx-python-lib",
    "prometheus_client": "prometheus-client",
    "presidio_analyzer": "presidio-analyzer",
    "presidio_anonymizer": "presidio-anonymizer",
    "stdnum": "python-stdnum",
}
_FALLBACK_EXTRA = {
    "pyyaml": "governance",
    "bandit": "governance",
    "cyclonedx-python-lib": "governance",
    "aiohttp": "guard",
}
# When a module is in several extras, the one named after the command wins; else this order.
_EXTRA_ORDER = ("torch", "serve", "privacy", "audit", "federated", "he", "pii", "scan", "governance", "guard")


def extra_for_module(module: str, command: str | None = None) -> str | None:
    """The ``bastion-ml`` extra that installs top-level ``module`` (None when no extra does).

    Read from the installed package's own metadata, so it stays in step with pyproject.toml."""
    from importlib import metadata

    top = module.split(".")[0]
    dist = _DISTRIBUTION_OF.get(top, top.replace("_", "-")).lower()
    try:
        requires = metadata.requires("bastion-ml") or []
    except metadata.PackageNotFoundError:
        return None
    extras: set[str] = set()
    for req in requires:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)[^;]*;.*extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if match and match.group(1).lower().replace("_", "-") == dist:
            extras.add(match.group(2))
    extras.discard("all")
    if not extras and dist in _FALLBACK_EXTRA:  # an editable install's metadata can lag pyproject.toml
        extras.add(_FALLBACK_EXTRA[dist])
    if not extras:
        return None
    if command is not None and command in extras:
        return command
    ranked = [e for e in _EXTRA_ORDER if e in extras]
    return ranked[0] if ranked else sorted(extras)[0]


def _missing_module_error(exc: ImportError, args: Sequence[str]) -> tuple[str, str]:
    name = exc.name or str(exc)
    command = next((a for a in args if not a.startswith("-")), None)
    extra = extra_for_module(name, command)
    top = name.split(".")[0]
    if extra is None:
        return f"{top} is not installed", f"pip install {top}"
    return (
        f"{top} is not installed (it comes with the [{extra}] extra)",
        f"pip install 'bastion-ml[{extra}]'",
    )


class _OneLineWarnings(logging.Handler):
    """bastion's warnings as ``warning: …`` lines on stderr, whatever a library did to the root logger."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().replace("\n", " ")
            sys.stderr.write(f"{record.levelname.lower()}: {message}\n")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """While a command runs, bastion's warnings print as one line each and skip the root logger (which a
    library such as Opacus may have given a raw ``date:LEVEL:message`` format); restored afterwards, so a
    library user's logging (and pytest's caplog) is untouched."""
    logger = logging.getLogger("bastion")
    handler = _OneLineWarnings(level=logging.WARNING)
    saved = (logger.propagate, logger.level)
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = saved[0], saved[1]


def _escape_markup(command: click.Command) -> None:
    """Help texts are plain text: keep Rich from reading ``[audit]`` or ``[serve]`` as markup tags."""
    from rich.markup import escape

    for attr in ("help", "short_help", "epilog"):
        value = getattr(command, attr, None)
        if isinstance(value, str) and "[" in value:
            setattr(command, attr, escape(value))
    for param in command.params:
        value = getattr(param, "help", None)
        if isinstance(value, str) and "[" in value:
            param.help = escape(value)  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _escape_markup(sub)


def _one_suggestion(exc: click.UsageError) -> None:
    """click (when it knows the possibilities) and typer both append "Did you mean …?": keep click's."""
    if getattr(exc, "possibilities", None):
        exc.message = re.sub(r"\s*Did you mean [^?]*\?", "", exc.message)  # type: ignore[misc]


def build_command() -> click.Command:
    """The click command tree of :func:`build_app`, with help texts safe for Rich."""
    command = typer.main.get_command(build_app())
    _escape_markup(command)
    return command


def _suggest_artifact(message: str, args: Sequence[str]) -> str | None:
    """``did you mean 'digits'?`` for a registry-name typo: only names this caller may read (``list()``
    filters by permission), and only when the vault opens without a prompt."""
    import difflib

    match = re.fullmatch(r"no artifact named '(.+)'", message)
    quiet = (
        os.environ.get("BASTION_PASSPHRASE")
        or os.environ.get("BASTION_TOKEN")
        or os.environ.get("BASTION_URL")
    )
    if match is None or not quiet:
        return None
    home = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--home"), None)
    try:
        from pathlib import Path

        from bastion.cli._common import open_vault

        with open_vault(None if home is None else Path(home)) as vault:
            names = sorted({v.name for v in vault.list()})
    except Exception:  # a suggestion is a courtesy: any failure leaves the error as it was
        return None
    close = difflib.get_close_matches(match.group(1), names, n=3, cutoff=0.6)
    return "did you mean " + " or ".join(repr(c) for c in close) + "?" if close else None


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
    with _one_line_warnings():
        return _run(args)


def _run(args: list[str]) -> int:
    try:
        from bastion.cli._common import refuse_local_only

        refuse_local_only(args)  # $BASTION_URL set: only commands the server answers run
        command = build_command()
        result = command.main(args=args, prog_name="bastion", standalone_mode=False)
        if isinstance(result, int):
            return result
        return EXIT_OK
    except BastionError as exc:
        hint = exc.hint
        if isinstance(exc, NotFound):
            hint = _suggest_artifact(str(exc), args) or hint
        _print_error(str(exc), hint)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        _print_error("aborted")
        return EXIT_ERROR
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError):
            _one_suggestion(exc)
        exc.show()
        return EXIT_ERROR
    except ImportError as exc:
        if os.environ.get("BASTION_DEBUG"):
            raise
        _print_error(*_missing_module_error(exc, args))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("BASTION_DEBUG"):
            raise
        _print_error(f"internal error ({type(exc).__name__}): {exc}", "set BASTION_DEBUG=1 for a traceback")
        return EXIT_ERROR


__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDING",
    "EXIT_OK",
    "build_app",
    "build_command",
    "extra_for_module",
    "main",
    "run",
]
