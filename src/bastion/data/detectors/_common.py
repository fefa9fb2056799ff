"""Small helpers shared by the detector families: boundaries, the chunk separator, protected prefixes."""

from __future__ import annotations

import re
from collections.abc import Callable

SEP = "\x00"
NEVER = re.compile(r"(?!)")  # the pattern of a finder-only detector
DEFERRED = "pattern?"  # the source of a candidate whose detector's ``confirm`` has not run yet
PROTECTED_PREFIXES = ("tok_", "hmac_")  # already-protected values (tokens, keyed hashes)

WORDISH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+/=-")

BIRTH_CONTEXT = re.compile(
    r"(?i)(born|birth|\bdob\b|d\.o\.b|geboren|geburt|n[ée]e? le|naissance|nacimiento|nacid[oa]|nato|nata|"
    r"nascita|nascido|geboortedatum|生年月日|出生|생년월일|"
    r"geb\b|gebdat|sinh\b|sündü|født|fødd|född|syntynyt|urodzon|doğum|рожд|родил)"
)
# Every match of BIRTH_CONTEXT holds one of these characters (each alternative starts with one; under (?i)
# b, d, f, g, n, u and р have no case partners but their capitals, s also matches ſ:
# tests/data/test_fastpath.py checks both).
_BIRTH_CHARS = re.compile(r"[bBdDgGnNsSſfFuUрР生出생]")


def birth_word(text: str, lo: int, hi: int) -> bool:
    """``BIRTH_CONTEXT.search(text, lo, hi) is not None``, after a one-class test that rules most windows out
    (the alternation has no first-character prefix: the engine would try every position)."""
    return _BIRTH_CHARS.search(text, lo, hi) is not None and BIRTH_CONTEXT.search(text, lo, hi) is not None


def whole(m: re.Match[str]) -> tuple[int, int]:
    return m.start(), m.end()


def preceded_by(m: re.Match[str], chars: frozenset[str], group: int = 0) -> bool:
    i = m.start(group)
    return i > 0 and m.string[i - 1] in chars


def bounded(chars: frozenset[str]) -> Callable[[re.Match[str]], tuple[int, int] | None]:
    """A validator refusing a match that continues a longer token on its left."""

    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        return None if preceded_by(m, chars) else whole(m)

    return validate


__all__ = [
    "ALNUM",
    "BIRTH_CONTEXT",
    "DEFERRED",
    "NEVER",
    "PROTECTED_PREFIXES",
    "SEP",
    "TOKEN_CHARS",
    "WORDISH",
    "birth_word",
    "bounded",
    "preceded_by",
    "whole",
]
