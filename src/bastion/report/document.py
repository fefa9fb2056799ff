"""The report model (frozen dataclasses) and JSON output."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import InvalidInput
from bastion.files import atomic_write


@dataclass(frozen=True)
class Figure:
    """One chart: ``data_uri`` is ``data:image/png;base64,…`` (or SVG), rendered inline."""

    title: str
    data_uri: str = field(repr=False)
    caption: str = ""

    def __post_init__(self) -> None:
        if not self.data_uri.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")):
            raise InvalidInput("figures must be inline base64 PNG or SVG data URIs")


@dataclass(frozen=True)
class Section:
    """A titled block: metric and parameter tables, notes, warnings and figures."""

    title: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    warnings: Sequence[str] = ()
    figures: Sequence[Figure] = ()
    grade: str | None = None
    key_figure: str | None = None  # the one number a reader needs first, as "label: value"
    guidance: str = ""  # "what this means / what to do", one paragraph


@dataclass(frozen=True)
class Document:
    """A whole report page."""

    title: str
    subtitle: str = ""
    summary: Sequence[Sequence[Any]] = ()
    summary_header: Sequence[str] = ()
    grade: str | None = None
    reasons: Sequence[str] = ()
    sections: Sequence[Section] = ()
    footer: str = ""


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, mappings, sequences, paths, enums and numpy values as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, bytes):
        return obj.hex()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "isoformat") and callable(obj.isoformat):  # datetimes
        return obj.isoformat()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (temp file + rename); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"report is not JSON-serialisable: {exc}") from exc
    return atomic_write(target, text + "\n")


__all__ = ["Document", "Figure", "Section", "to_jsonable", "write_json"]
