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
from bastion.data.detectors._common import SEP, birth_word, whole
from bastion.data.detectors.interface import Detector, Family


def _v_compact_birth(m: re.Match[str]) -> tuple[int, int] | None:
    """Bare ``19820303`` only next to a birth keyword (otherwise it is an order number or a serial)."""
    lo = max(0, m.start() - 30)
    cut = m.string.rfind(SEP, lo, m.start())
    if not birth_word(m.string, cut + 1 if cut >= 0 else lo, m.start()):
        return None
    return whole(m)


def _v_short_birth(m: re.Match[str]) -> tuple[int, int] | None:
    """``08/02/84``, ``22-DEC-72`` only right after a birth word ("DOB", "geb.", "born" …)."""
    i = m.start()
    if i > 0 and (m.string[i - 1] in "/.-_" or m.string[i - 1].isalnum()):
        return None
    if date_parts(m) is None:
        return None
    return _v_compact_birth(m)


DATE = Detector(E.DATE, DATE_PATTERN, 0.6, validate_date)
MONTH_FIRST = Detector(E.DATE, MONTH_FIRST_DATE, 0.6, validate_date)
COMPACT_BIRTH = Detector(E.DATE_OF_BIRTH, COMPACT_DATE, 0.6, _v_compact_birth)
SHORT_BIRTH = Detector(E.DATE_OF_BIRTH, SHORT_YEAR_DATE, 0.6, _v_short_birth)

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
