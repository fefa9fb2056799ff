"""Undo character-level smuggling before detection, with spans mapped back to the original text.

Two tricks hide a value from every pattern while a reader still sees it (issue 21 F-ZW):

* invisible *format* characters between the characters (zero-width space/joiners, word joiner, BOM, soft
  hyphen, bidi marks): ``6<ZWSP>1<ZWSP>5<ZWSP>7 …``;
* one separator between every character: ``9.0.7.1.9.6.0.1.0.2.9``, ``m-a-r-i-a``, ``5 2 0 3 1 2 7``.

:func:`normalise` deletes both (format characters anywhere; the separators of a run of at least
:data:`MIN_RUN` single letters or digits joined by one and the same separator) and keeps, for every character
left, its index in the original text. Detection runs on the normalised text and :meth:`Normalised.span` maps
a finding back (it covers the deleted characters inside it, so replacing it removes the whole smuggled value).
Only deletions: every other character keeps its identity (NFKC-style folding is the detectors' business), so
the mapping is exact. Texts without either trick cost one regex search and come back as ``None``.

A collapsed run of :data:`CONCEALED_RUN` characters or more in which no detector finds anything is itself
reported (:func:`concealed_runs`): nobody writes a value one character at a time except to hide it, so it is
protected as a secret rather than kept (fail closed). Space-separated runs are collapsed for detection but not
reported on their own (spaced-out headings and bit strings are ordinary text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

# Format characters (Unicode category Cf) that render as nothing: soft hyphen, Mongolian vowel separator,
# zero-width space/non-joiner/joiner, LRM/RLM, bidi embeddings and isolates, word joiner and invisible
# operators, BOM / zero-width no-break space.
FORMAT_CHARS = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_SEPARATORS = r"._·•|/\\ -"
MIN_RUN = 5  # single characters in a separator run (4 separators): shorter runs are initials, versions
CONCEALED_RUN = 8  # a collapsed run this long with no finding is reported as concealed
# A cheap first look: a format character, or four separators each followed by one single character.
_SUSPECT = re.compile(
    "[" + FORMAT_CHARS + "]|([" + _SEPARATORS + r"])[^\W_]\1[^\W_]\1[^\W_]\1[^\W_](?![^\W_])"
)
_FORMAT = re.compile("[" + FORMAT_CHARS + "]+")
_RUN = re.compile(
    r"(?<![^\W_])[^\W_]([" + _SEPARATORS + r"])[^\W_](?:\1[^\W_]){" + str(MIN_RUN - 2) + r",}(?![^\W_])"
)


@dataclass(frozen=True)
class Normalised:
    """A text with smuggling characters deleted; ``index[i]`` is character ``i``'s index in the original."""

    text: str
    index: tuple[int, ...]
    runs: tuple[tuple[int, int], ...]  # collapsed runs (separators other than a space), in ``text``

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original (start, end) of ``text[start:end]`` (deleted characters inside it included)."""
        if end <= start:
            at = self.index[start] if start < len(self.index) else (self.index[-1] + 1 if self.index else 0)
            return at, at
        return self.index[start], self.index[end - 1] + 1


# A superset of ``_SUSPECT`` for RE2 (no backreference): four separators each followed by one character
# that is not a separator. On a long text (a column chunk) one RE2 pass rules most chunks out, several times
# faster than Python's engine.
_SUSPECT_RE2 = "[" + FORMAT_CHARS + "]|(?:[" + _SEPARATORS + r"][^\x00" + _SEPARATORS + r"]){4}"
_RE2_MIN_CHARS = 2048


@cache
def _re2_suspect() -> Any:
    try:
        import re2

        options = re2.Options()
        options.log_errors = False
        return re2.compile(_SUSPECT_RE2, options)
    except Exception:  # RE2 missing or refusing the pattern: Python's engine only
        return None


def suspect(text: str) -> bool:
    """``text`` may hold a smuggling trick (a format character or a separator run): cheap, no allocation."""
    fast = _re2_suspect() if len(text) >= _RE2_MIN_CHARS else None
    if fast is not None:
        try:
            found = fast.search(text) is not None
        except Exception:  # lone surrogates (not UTF-8): Python's engine decides
            found = True
        if not found:
            return False
    return _SUSPECT.search(text) is not None


def normalise(text: str) -> Normalised | None:
    """``text`` without format characters and one-character separator runs; ``None`` if it has neither."""
    if _SUSPECT.search(text) is None:
        return None
    # Format characters first (a run may be hidden behind them: "5<ZWSP>.2.0…"), then separator runs.
    kept = [i for i, c in enumerate(text) if not _FORMAT.match(c)] if _FORMAT.search(text) else None
    stage = text if kept is None else "".join(text[i] for i in kept)
    drop: set[int] = set()
    marks: list[tuple[int, int, bool]] = []  # (start, end, flag as concealed) in ``stage``
    for m in _RUN.finditer(stage):
        sep = m.group(1)
        drop.update(i for i in range(m.start(), m.end()) if stage[i] == sep)
        marks.append((m.start(), m.end(), sep != " "))
    if not drop and kept is None:
        return None
    index: list[int] = []
    new_at = [0] * (len(stage) + 1)  # position in the normalised text of each ``stage`` position
    for j in range(len(stage)):
        new_at[j] = len(index)
        if j not in drop:
            index.append(j if kept is None else kept[j])
    new_at[len(stage)] = len(index)
    out = "".join(text[i] for i in index)
    runs = tuple((new_at[a], new_at[b]) for a, b, flag in marks if flag)
    return Normalised(out, tuple(index), runs)


def concealed_runs(norm: Normalised, found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Collapsed runs of :data:`CONCEALED_RUN` characters or more that no finding overlaps (normalised
    coordinates)."""
    out = []
    for a, b in norm.runs:
        if b - a >= CONCEALED_RUN and not any(s < b and e > a for s, e in found):
            out.append((a, b))
    return out


__all__ = ["CONCEALED_RUN", "FORMAT_CHARS", "MIN_RUN", "Normalised", "concealed_runs", "normalise", "suspect"]
