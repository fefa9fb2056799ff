"""Helpers shared by the command modules: output formats, JSON printing, opening the vault."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Any

import typer


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"


FORMAT_OPTION = typer.Option(OutputFormat.text, "--format", help="Output format.")
HOME_OPTION = typer.Option(None, "--home", help="Project home (default: $BASTION_HOME or ./.bastion).")


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths, enums, numpy scalars and sets into JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, bytes):
        return obj.hex()
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except (ValueError, RuntimeError):
            pass
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def print_json(obj: Any) -> None:
    """Print one JSON document to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def open_vault(home: Path | None = None, **kwargs: Any) -> Any:
    """Open the project's vault as the CLI's caller (``$BASTION_TOKEN`` identity, else the local owner)."""
    from bastion.vault import open_vault as _open

    return _open(home=home, **kwargs)
