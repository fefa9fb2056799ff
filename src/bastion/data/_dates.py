"""Calendar dates in numeric and written forms, in several languages; event timestamps are not dates.

Forms: ``1982-03-03``, ``1982/03/03``, ``1982.03.03``, ``03/03/1982`` (month first or day first, whichever is
a valid date), ``3.3.1982``, ``03-Mar-1982``, ``3 Mar 1982``, ``March 3rd, 1982``, ``3rd of March 1982``,
``3. März 1982``, ``3 de marzo de 1982``, ``le 3 mars 1982``, ``3 maggio 1982``, ``1 декабря 1967``,
``1982年3月3日``, ``1982년 3월 3일``, ``19 tháng 2 năm 1949``, and bare ``19820303`` or a two-digit year
(``08/02/84``, ``22-DEC-72``) only where a birth keyword or a date-of-birth column says so (eight digits are
more often an order or a serial number). Month names: English, French, German, Spanish, Italian,
Portuguese, Dutch, Polish, Swedish/Danish/Norwegian, Turkish, Russian.

A date immediately followed by a time of day (``2024-03-05T10:22:13Z``, ``2024-03-05 10:22``) is an event
timestamp, not a date about a person, and is not reported.
"""

from __future__ import annotations

import calendar
import datetime
import re

_MONTHS: dict[str, int] = {}
for _month, _names in enumerate(
    (
        "january jan janvier janv januar jänner enero ene gennaio genn janeiro januari stycznia styczeń ocak",
        "february feb fevrier février fevr févr februar febrero febbraio fevereiro fev februari lutego luty "
        "şubat subat",
        "march mar mars märz maerz marzo março marco maart marca marzec mart",
        "april apr avril abril aprile abr kwietnia kwiecień nisan",
        "may mai mayo maggio maio mei maja maj mayıs mayis",
        "june jun juin juni junio giugno giu junho czerwca czerwiec haziran",
        "july jul juillet juil juli julio luglio lug julho lipca lipiec temmuz",
        "august aug aout août augusti agosto ago augustus sierpnia sierpień ağustos agustos",
        "september sep sept septembre septiembre settembre set setembro września wrzesień eylül eylul",
        "october oct octobre oktober octubre ottobre ott outubro out października październik ekim okt",
        "november nov novembre noviembre novembro listopada listopad kasım kasim",
        "december dec décembre decembre dezember diciembre dic dicembre dezembro dez grudnia grudzień aralık "
        "aralik",
    ),
    start=1,
):
    for _n in _names.split():
        _MONTHS[_n] = _month
# Russian month names, genitive (1 декабря 1967) and nominative.
for _month, _names in enumerate(
    (
        "января январь",
        "февраля февраль",
        "марта март",
        "апреля апрель",
        "мая май",
        "июня июнь",
        "июля июль",
        "августа август",
        "сентября сентябрь",
        "октября октябрь",
        "ноября ноябрь",
        "декабря декабрь",
    ),
    start=1,
):
    for _n in _names.split():
        _MONTHS[_n] = _month

_MONTH_ALT = "|".join(sorted((re.escape(n) for n in _MONTHS), key=len, reverse=True))
_M = r"(?P<{g}>(?i:" + _MONTH_ALT + r"))\.?"
_ORD = r"(?:st|nd|rd|th|er|e|º|°)?"
_Y = r"(?P<{g}>(?:19|20)\d\d)"

DATE_PATTERN = re.compile(
    r"\b(?:"  # a word boundary first: about twice as fast as letting every digit of a run start a match
    # ISO and year-first: 1982-03-03, 1982/03/03, 1982.03.03
    + _Y.format(g="y1")
    + r"(?P<s1>[-/.])(?P<m1>0?[1-9]|1[0-2])(?P=s1)(?P<d1>0?[1-9]|[12]\d|3[01])"
    # numeric with the year last: 03/03/1982, 3.3.1982, 03-03-1982 (month- or day-first)
    + r"|(?P<a2>\d\d?)(?P<s2>[-/.])(?P<b2>\d\d?)(?P=s2)"
    + _Y.format(g="y2")
    # day month-name year: 3 Mar 1982, 03-Mar-1982, 3rd of March, 1982, 3. März 1982, 3 de marzo de 1982
    + r"|(?P<d3>[0-3]?\d)"
    + _ORD
    + r"\.?(?:[ ]+|-)(?:of[ ]+|de[ ]+)?"
    + _M.format(g="m3")
    + r",?(?:[ ]+|-)(?:de[ ]+)?"
    + _Y.format(g="y3")
    # CJK: 1982年3月3日, Korean 1982년 3월 3일
    + r"|"
    + _Y.format(g="y5")
    + r"(?:年|년[ ]?)(?P<m5>[01]?\d)(?:月|월[ ]?)(?P<d5>[0-3]?\d)(?:日|일)"
    # Vietnamese: (ngày) 19 tháng 2 năm 1949
    + r"|(?P<d6>[0-3]?\d)[ ]+tháng[ ]+(?P<m6>[01]?\d)[ ]+năm[ ]+"
    + _Y.format(g="y6")
    + r")(?![\w/-])(?!\.\d)"
)
# Month-name first (March 3rd, 1982 / Mar 3 1982) is a second pattern: every branch above starts with a digit,
# which lets the regex engine skip ahead; this one matches any word before a day and a year and looks the
# word up in the month table (a case-insensitive alternation of month names is ~10x slower to scan).
MONTH_FIRST_DATE = re.compile(
    # The left boundary right after the first letter: a start inside a word fails at once, and the engine
    # still skips ahead to letters (a leading lookbehind would stop that).
    r"(?P<m4>[^\W\d_](?<![^\W\d_][^\W\d_])[^\W\d_]{2,10})\.?[ ]+(?P<d4>[0-3]?\d)"
    + _ORD
    + r",?[ ]+"
    + _Y.format(g="y4")
    + r"(?![\w/-])(?!\.\d)"
)
COMPACT_DATE = re.compile(
    r"(?P<y>(?:1(?<![\w.-]1)9|2(?<![\w.-]2)0)\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])(?![\w-]|\.\w)"
)
# Two-digit years: 08/02/84, 08.02.84, 22-DEC-72. Only next to a birth word (``detectors.dates``): a
# two-digit year is as often a day, a version or a batch number.
SHORT_YEAR_DATE = re.compile(
    r"(?P<a8>\d\d?)(?P<s8>[-/.])(?:(?P<b8>\d\d?)|"
    + _M.format(g="m8")[:-3]
    + r")(?P=s8)(?P<y8>\d\d)(?![\w/-])(?!\.\d)"
)
_TIME_AFTER = re.compile(r"(?:T|[ ]+(?:at[ ]+)?)\d\d?:\d\d")


def date_valid(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    return day <= calendar.monthrange(year, month)[1]


def _century(yy: int) -> int:
    """A two-digit year of a birth date: this century up to the current year, the last one otherwise."""
    return 2000 + yy if 2000 + yy <= datetime.date.today().year else 1900 + yy


def date_parts(m: re.Match[str]) -> tuple[int, int, int] | None:
    """(year, month, day) of a :data:`DATE_PATTERN` or :data:`COMPACT_DATE` match, when it is a real date."""
    g = m.groupdict()
    try:
        if g.get("y1"):
            parts = int(g["y1"]), int(g["m1"]), int(g["d1"])
        elif g.get("y2"):
            year, a, b = int(g["y2"]), int(g["a2"]), int(g["b2"])
            parts = (year, a, b) if date_valid(year, a, b) else (year, b, a)
        elif g.get("y3"):
            parts = int(g["y3"]), _MONTHS[g["m3"].lower()], int(g["d3"])
        elif g.get("y4"):
            parts = int(g["y4"]), _MONTHS[g["m4"].lower()], int(g["d4"])
        elif g.get("y5"):
            parts = int(g["y5"]), int(g["m5"]), int(g["d5"])
        elif g.get("y6"):
            parts = int(g["y6"]), int(g["m6"]), int(g["d6"])
        elif g.get("y8"):
            year = _century(int(g["y8"]))
            if g.get("m8"):
                parts = year, _MONTHS[g["m8"].lower()], int(g["a8"])
            else:
                a, b = int(g["a8"]), int(g["b8"])
                parts = (year, b, a) if date_valid(year, b, a) else (year, a, b)
        elif g.get("y"):
            parts = int(g["y"]), int(g["m"]), int(g["d"])
        else:
            return None
    except (KeyError, ValueError):
        return None
    return parts if date_valid(*parts) else None


def is_timestamp(m: re.Match[str]) -> bool:
    """The date is the first half of a date-time (an event, not a fact about a person)."""
    return _TIME_AFTER.match(m.string, m.end()) is not None


def validate_date(m: re.Match[str]) -> tuple[int, int] | None:
    i = m.start()
    if i > 0 and (m.string[i - 1] in "/.-_" or m.string[i - 1].isalnum()):
        return None  # inside a longer token (left boundary checked here, not by a leading lookbehind)
    if is_timestamp(m) or date_parts(m) is None:
        return None
    return m.start(), m.end()


def parse_date(value: str) -> tuple[int, int, int] | None:
    """The first date in ``value`` (any supported form, compact digits included)."""
    for pattern in (DATE_PATTERN, MONTH_FIRST_DATE, COMPACT_DATE):
        for m in pattern.finditer(value):
            parts = date_parts(m)
            if parts is not None:
                return parts
    return None


__all__ = [
    "COMPACT_DATE",
    "DATE_PATTERN",
    "MONTH_FIRST_DATE",
    "SHORT_YEAR_DATE",
    "date_parts",
    "date_valid",
    "is_timestamp",
    "parse_date",
]
