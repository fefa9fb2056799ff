"""The check-digit and format validators of the national identifiers (python-stdnum where it has the
format, the IRS ITIN groups, the Chinese resident id's check character, HMRC's NINO prefix rules) and
:class:`IdFormat`, one identifier format; the formats themselves and how they are found are in
:mod:`bastion.data._national`."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _std(cc: str, name: str) -> Any:
    try:
        from stdnum import get_cc_module
    except ImportError:
        return None
    return get_cc_module(cc, name)


def _stdnum_ok(cc: str, name: str, value: str) -> bool:
    mod = _std(cc, name)
    if mod is None:
        return False
    try:
        return bool(mod.is_valid(value))
    except Exception:
        return False


# IRS ITIN groups (digits 4-5): 50-65, 70-88, 90-92, 94-99 (the 50-65 range was added in 2011).
_ITIN_GROUPS = frozenset(
    f"{g:02d}" for g in (*range(50, 66), *range(70, 89), *range(90, 93), *range(94, 100))
)


def itin_valid(value: str) -> bool:
    """A US ITIN: nine digits starting with 9, the group in one of the IRS ranges (no check digit)."""
    v = re.sub(r"[ -]", "", value)
    return len(v) == 9 and v.isdigit() and v[0] == "9" and v[3:5] in _ITIN_GROUPS


_CN_PROVINCES = frozenset(
    str(p)
    for p in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
        91,
    )
)


def cn_ric_valid(value: str) -> bool:
    """A Chinese resident id: province, birth date and the ISO 7064 mod 11-2 check character.

    The district code is not looked up: districts are renamed and created, and a person born before a
    district existed carries its newer code (python-stdnum's table check rejects those)."""
    v = value.upper()
    if len(v) != 18 or not v[:17].isdigit() or v[:2] not in _CN_PROVINCES:
        return False
    mod = _std("cn", "ric")
    if mod is None:
        return False
    try:
        return bool(mod.calc_check_digit(v) == v[-1] and mod.get_birth_date(v).year >= 1900)
    except Exception:
        return False


_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(value: str) -> bool:
    """HMRC's format rules for a National Insurance number (it has no check digit)."""
    v = re.sub(r"[ -]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", v):
        return False
    a, b = v[0], v[1]
    return a not in "DFIQUV" and b not in "DFIOQUV" and v[:2] not in _NINO_BAD_PREFIX


_LEADING_ATOM = re.compile(r"(\\d|\[[^\]]+\])(?:\{(\d+)\})?")


def _fast_left(pattern: str) -> str:
    """Refuse a start inside a longer token right after the first character (``\\d{11}`` becomes
    ``\\d(?<![\\w./-]\\d)\\d{10}``): the regex engine keeps its fast skip-ahead and every start inside a
    digit run is pruned at once."""
    m = _LEADING_ATOM.match(pattern)
    if m is None:
        return pattern
    atom, count = m.group(1), int(m.group(2) or 1)
    rest = pattern[m.end() :]
    more = "" if count == 1 else atom + (f"{{{count - 1}}}" if count > 2 else "")
    return atom + r"(?<![\w./-]" + atom + ")" + more + rest


class IdFormat:
    """One identifier format: a candidate pattern, a validator of the matched text, a strength."""

    __slots__ = ("check", "context", "entity", "name", "pattern")

    def __init__(
        self,
        name: str,
        entity: str,
        pattern: str,
        check: Callable[[str], bool],
        context: re.Pattern[str] | None = None,
    ) -> None:
        self.name = name
        self.entity = entity
        self.pattern = re.compile(_fast_left(pattern))
        self.check = check
        self.context = context


def std_check(cc: str, name: str) -> Callable[[str], bool]:
    return lambda v: _stdnum_ok(cc, name, v)
