"""Helpers shared by the command modules: output formats, JSON printing, opening the vault."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any

import typer

from bastion.report.document import to_jsonable


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"


FORMAT_OPTION = typer.Option(OutputFormat.text, "--format", help="Output format.")
HOME_OPTION = typer.Option(None, "--home", help="Project home (default: $BASTION_HOME or ./.bastion).")


def print_json(obj: Any) -> None:
    """Print one JSON document to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def open_vault(home: Path | None = None, **kwargs: Any) -> Any:
    """Open the project's vault as the CLI's caller (``$BASTION_TOKEN`` identity, else the local owner)."""
    from bastion.vault import open_vault as _open

    return _open(home=home, **kwargs)
