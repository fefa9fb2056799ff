"""Exact fast paths of :func:`bastion.guard.normalize.normalize` (issue 16, round 19, perf19).

A retrieved document with two whole-text readings (scattered escapes and reversed text, a Caesar shift and
reversed text) is normalised three times; these paths give the same text as the plain steps, faster:

- :func:`chars`: a text's distinct characters, once. Every step that looks for one class of characters
  (invalid code points, tag characters, invisible characters, letter forms, combining marks, look-alikes)
  finds one in the text exactly when it finds one among them, so the step is skipped when it finds none;
- :func:`leet_words`: ``_LEET_WORD.sub(unleet, text)`` walked from each leetspeak character (a rare class:
  ``re`` skips ahead to it) instead of testing every token start. A match of ``_LEET_WORD`` is always a whole
  run of ``[\\w$@!]`` (its lookbehind allows no run character before it; ``!`` is a run character) without
  its trailing ``!``, of three characters or more, holding a letter and a leetspeak character; ``unleet``
  leaves a word over 24 characters as it is, so a run that long is skipped unread.

``tests/guard/test_r19_perf.py`` pins each against the plain computation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_LEET_CHAR = re.compile(r"[013457$@]")
_RUN_REST = re.compile(r"[\w$@!]*")
_LETTER = re.compile(r"[^\W\d_]")
_LONGEST = 24  # the longest word unleet reads (a longer one is left as it is)


def chars(text: str) -> str:
    """``text``'s distinct characters, in no particular order ("" for an ASCII text: every class these gates
    stand for is outside ASCII)."""
    return "" if text.isascii() else "".join(set(text))


def _run_char(c: str) -> bool:
    """``[\\w$@!]`` as ``re`` reads it on a str (``\\w``: alphanumeric or ``_``)."""
    return c.isalnum() or c in "_$@!"


def leet_words(text: str, unleet: Callable[[str], str]) -> str:
    """``_LEET_WORD.sub(lambda m: unleet(m.group()), text)``, where ``unleet`` leaves words over 24 characters
    as they are (see the module doc)."""
    parts: list[str] = []
    at = 0  # the end of the last run read
    done = 0  # text[:done] is in parts
    for m in _LEET_CHAR.finditer(text):
        i = m.start()
        if i < at:
            continue
        lo = i
        while lo > at and i - lo <= _LONGEST and _run_char(text[lo - 1]):
            lo -= 1
        at = _RUN_REST.match(text, i).end()  # type: ignore[union-attr]  # (matches the empty string)
        if i - lo > _LONGEST:  # a run of more than 24 characters: left as it is
            continue
        word = text[lo:at].rstrip("!")
        if len(word) < 3 or len(word) > _LONGEST or _LETTER.search(word) is None:
            continue
        new = unleet(word)
        if new != word:
            parts += [text[done:lo], new]
            done = lo + len(word)
    if not parts:
        return text
    return "".join(parts) + text[done:]


__all__ = ["chars", "leet_words"]
