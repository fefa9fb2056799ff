"""JSON-object cells scanned by key: each key's values become a column of their own.

A column whose cells are flat JSON objects (``{"fullName": "…", "dob": "…", "phone": "…"}``) is scanned the
way ``protect`` already treats such cells (:mod:`bastion.data._cells`): the values under one key form a
virtual column named by the key, so the key is column context (``dob`` makes dates dates of birth,
``fullName`` makes a name-shaped value a person) and each virtual column gets sample-and-confirm and the
per-value memo. The findings map back to the exact characters of each value inside its cell.

Only cells that are one flat object whose string values carry no escape sequences are taken this way (their
value text is the raw text between the quotes); every other cell (nested values, escapes, not JSON) is left to
span detection over the text, as before.
"""

from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable

# The standard library's (C-accelerated) JSON string scanner: (value, index after the closing quote).
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def flat_object(cell: str) -> list[tuple[str, int, int]] | None:
    """(key, start, end) of every string or number value of a flat JSON object cell, or ``None``.

    ``cell[start:end]`` is the value exactly as written (no escapes in string values)."""
    i = _WS.match(cell).end()  # type: ignore[union-attr]
    if cell[i : i + 1] != "{":
        return None
    out: list[tuple[str, int, int]] = []
    i = _WS.match(cell, i + 1).end()  # type: ignore[union-attr]
    if cell[i : i + 1] == "}":
        return out if not cell[i + 1 :].strip() else None
    try:
        while True:
            if cell[i : i + 1] != '"':
                return None
            key, i = scanstring(cell, i + 1)
            i = _WS.match(cell, i).end()  # type: ignore[union-attr]
            if cell[i : i + 1] != ":":
                return None
            i = _WS.match(cell, i + 1).end()  # type: ignore[union-attr]
            head = cell[i : i + 1]
            if head == '"':
                value, end = scanstring(cell, i + 1)
                if cell[i + 1 : end - 1] != value:
                    return None  # escapes: the raw text is not the value
                out.append((key, i + 1, end - 1))
                i = end
            else:
                m = _SCALAR.match(cell, i)
                if m is None:
                    return None  # nested object or array
                if head not in "tfn":
                    out.append((key, i, m.end()))
                i = m.end()
            i = _WS.match(cell, i).end()  # type: ignore[union-attr]
            sep = cell[i : i + 1]
            i = _WS.match(cell, i + 1).end()  # type: ignore[union-attr]
            if sep == "}":
                return out if i >= len(cell) else None
            if sep != ",":
                return None
    except (ValueError, IndexError):
        return None


def looks_json(values: list[str]) -> bool:
    """Most non-empty cells of the sample are flat JSON objects."""
    seen = parsed = 0
    for v in values:
        if not v:
            continue
        seen += 1
        parsed += flat_object(v) is not None
    return seen >= 5 and parsed >= 0.8 * seen


__all__ = ["flat_object", "looks_json"]
