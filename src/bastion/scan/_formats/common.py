"""Helpers the format handlers share: bounded JSON parsing and archive/external-data path checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bastion.scan._io import Malformed


def loads_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise Malformed(f"{what}: JSON nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"{what}: invalid JSON ({exc.__class__.__name__})") from exc


def escapes(location: str, base: Path | None) -> bool:
    if not location or location.startswith(("/", "\\")) or "\\" in location or "\x00" in location:
        return True
    if re.match(r"[A-Za-z]:", location) or ".." in location.split("/"):
        return True
    if base is not None:
        target = (base / location).resolve()
        return not target.is_relative_to(base.resolve())
    return False


def path_traversal(name: str) -> bool:
    """An archive member name that would land outside the extraction directory."""
    return escapes(name.rstrip("/"), None) if name else True


__all__ = ["escapes", "loads_json", "path_traversal"]
