"""Dates in numeric and written forms (many languages' month names); compact ``19820303`` near a birth word.

Patterns and the calendar check live in :mod:`bastion.data._dates`. Timestamps of events (a date followed by
a time) are not dates of birth and are not reported.
"""

from __future__ import annotations

import re

from bastion.data import entities as E
from bastion.data._dates import (
    COMPACT_DATE,
    DATE_PATTERN,
    MONTH_FIRST_DATE,
    SHORT_YEAR_DATE,
    date_parts,
    validate_date,
)
from bastion.data._national import keywords
from bastion.data.detectors._common import BIRTH_CONTEXT, NEVER, SEP, birth_word, whole
from bastion.data.detectors.interface import Detector, Family


def _v_compact_birth(m: re.Match[str]) -> tuple[int, int] | None:
    """Bare ``19820303`` only next to a birth keyword (otherwise it is an order number or a serial)."""
    lo = max(0, m.start() - 30)
    cut = m.string.rfind(SEP, lo, m.start())
    if not birth_word(m.string, cut + 1 if cut >= 0 else lo, m.start()):
        return None
    return whole(m)


# Birth words as a case-variant literal alternation (scanned fast; BIRTH_CONTEXT confirms the hit).
_BIRTH_WORDS = keywords(
    "dob|d.o.b|born|birth|geb|geboren|geburt|sinh|née|nee|né|naissance|nacimiento|nacido|nacida|nato|nata|"
    "nascita|nascido|geboortedatum|født|fødd|född|syntynyt|urodzon|doğum|рожд|родил|生年月日|出生|생년월일"
)
_SHORT_WINDOW = 30


def _short_birth(text: str) -> list[tuple[int, int, float]]:
    """``08/02/84``, ``22-DEC-72`` only right after a birth word ("DOB", "geb.", "born" …): the birth word
    is searched first, the date in the few characters after it (same cell)."""
    out: list[tuple[int, int, float]] = []
    pos = 0
    for kw in _BIRTH_WORDS.finditer(text):
        lo = max(kw.end(), pos)
        hi = min(len(text), kw.end() + _SHORT_WINDOW)
        cut = text.find(SEP, lo, hi)
        if cut != -1:
            hi = cut
        if not BIRTH_CONTEXT.search(text, kw.start(), kw.end() + 4):
            continue  # a short keyword inside a longer word ("geb" in "Gebühr")
        for m in SHORT_YEAR_DATE.finditer(text, lo, hi):
            i = m.start()
            if i > 0 and (text[i - 1] in "/.-_" or text[i - 1].isalnum()):
                continue
            if date_parts(m) is not None:
                out.append((m.start(), m.end(), 0.6))
                pos = m.end()
                break
    return out


DATE = Detector(E.DATE, DATE_PATTERN, 0.6, validate_date)
MONTH_FIRST = Detector(E.DATE, MONTH_FIRST_DATE, 0.6, validate_date)
COMPACT_BIRTH = Detector(E.DATE_OF_BIRTH, COMPACT_DATE, 0.6, _v_compact_birth)
SHORT_BIRTH = Detector(E.DATE_OF_BIRTH, NEVER, 0.6, finder=_short_birth, needs=SHORT_YEAR_DATE)

FAMILY = Family(
    name="dates",
    entities=frozenset({E.DATE, E.DATE_OF_BIRTH}),
    members=(DATE, MONTH_FIRST, COMPACT_BIRTH, SHORT_BIRTH),
    positives=(
        ("born on March 3rd, 1982 in Leeds", "March 3rd, 1982"),
        ("DOB 3 Mar 1982", "3 Mar 1982"),
        ("1982/03/03", "1982/03/03"),
        ("geboren am 3. März 1982", "3. März 1982"),
        ("date of birth: 19820303", "19820303"),
        ("DOB 14/09/77, seen today", "14/09/77"),
    ),
    negatives=(
        "2024-02-30",
        "order 19820303",
        "event at 2024-03-01T10:22:33Z",
        "version 1.2.3",
        "batch 14/09/77 shipped",
    ),
)

__all__ = ["COMPACT_BIRTH", "DATE", "FAMILY", "MONTH_FIRST", "SHORT_BIRTH"]
