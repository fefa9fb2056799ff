"""Telephone numbers of many countries, validated with ``phonenumbers`` (the port of Google's libphonenumber).

A loose pattern finds candidates (an optional ``+``/``00``, digits with spaces, dots, dashes or parentheses);
``phonenumbers`` decides. International numbers (``+44 20 7946 0958``, ``0049 30 901820``) are parsed as
such; national ones (``020 7946 0958``, ``06 12 34 56 78``, ``(212) 555-0187``) are tried against a list of
regions (:data:`REGIONS`, most common first) and accepted when one of them calls the number valid.

Digit runs with no separator and no ``+`` are accepted only with a keyword nearby ("tel", "phone", "mobile",
"call" …) or in a phone column: unformatted digit strings are more often order numbers or serials. Candidates
that are dates or valid ISBNs are never phones.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# No leading lookbehind (it would stop the regex engine skipping ahead): the left boundary is checked in code.
PHONE_CANDIDATE = re.compile(r"[+(\d][\d ().-]{6,19}\d(?![\w-]|[.,]\d)")
_LEFT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+/.,:(-")
_KEYWORD = re.compile(
    r"(?i)(tel|phone|mobile|mobil|cell|call|fax|handy|telefon|t[ée]l[ée]phone|tel[ée]fono|telefone|"
    r"celular|portable|whatsapp|sms|ring|contact|📞|☎|"
    # other languages' words for phone / call (issue 21 attack21b)
    r"điện thoại|dien thoai|τηλ|καλέστε|κλήση|телефон|тел|звонить|позвоните|電話|전화|טלפון|התקשר|هاتف|اتصل|"
    r"फोन|anrufen|rufnummer|appeler|llamar|chiamare|ligar|bellen|numara|arayın|zadzwoń)"
)
REGIONS: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "IN", "BR", "ES", "IT", "NL", "CA", "AU", "MX", "JP", "CN", "KR", "PL", "SE",
    "CH", "BE", "AT", "IE", "PT", "ZA", "NG", "AR", "TR", "RU", "ID", "PH", "SG",
)  # fmt: skip
_CONTEXT_WINDOW = 40
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
_PHONE_SHAPED = re.compile(
    r"\(\d{2,5}\)[ ]?\d{2,4}[ .-]?\d{3,4}|\d{3}[ .-]\d{3}[ .-]\d{4}|0\d{2,4}[ ]\d{3,4}[ ]?\d{3,4}"
    r"|0\d(?:[ .-]\d\d){4}"  # 06 12 34 56 78 (France, Belgium, Morocco …)
)
_IPV4_LIKE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # the IP detector's
_IBAN_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d\d(?:[ ]?[A-Z0-9]{4})*[ ]?$")
_DECIMAL = re.compile(r"\d+[.,]\d+")  # 48.85660, a coordinate or an amount
_VERSION_LIKE = re.compile(r"\d{1,3}(?:\.\d+)*\.\d(?:\.\d+)*")  # 10.0.19041.1: a version, not a phone
# 2024.11.26.3704, 2026.5.0.8871, 2024-11-26-17: a year, two short numbers and more after them is a dated
# build, release or batch number (CalVer), not a phone.
_DATED_BUILD = re.compile(r"(?:19|20)\d\d([-/.])\d{1,2}\1\d{1,2}(?:\1\d+)+")


@cache
def _phonenumbers() -> Any:
    try:
        import phonenumbers
    except ImportError:
        return None
    return phonenumbers


def _has_keyword(text: str, start: int) -> bool:
    lo = max(0, start - _CONTEXT_WINDOW)
    cut = text.rfind("\x00", lo, start)
    return _KEYWORD.search(text, cut + 1 if cut >= 0 else lo, start) is not None


def _isbn(digits: str) -> bool:
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(digits))
    return total % 10 == 0


_TRUNK_ZERO = (
    "GB", "FR", "DE", "IT", "NL", "BE", "AT", "CH", "AU", "JP", "BR", "IN", "IE", "PT", "SE",
    "ZA", "NG", "AR", "TR", "RU", "ID", "PH", "KR", "CN", "PL", "ES", "MX", "US", "CA", "SG",
)  # fmt: skip
_NANP_FIRST = ("US", "CA", *[r for r in REGIONS if r not in ("US", "CA")])


def _region_order(text: str, digits: str, regions: tuple[str, ...]) -> tuple[str, ...]:
    """Most likely regions first, from the number's shape (a leading trunk 0, a NANP area code …)."""
    if regions is not REGIONS:
        return regions
    if digits.startswith("0"):
        return _TRUNK_ZERO
    if text.startswith("(") or (len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789"):
        return _NANP_FIRST
    return regions


@cache
def _possible_lengths(pn: Any, region: str) -> tuple[int, ...]:
    """libphonenumber's possible national lengths for ``region`` (static metadata: looked up once)."""
    md = pn.PhoneMetadata.metadata_for_region(region)
    return tuple(md.general_desc.possible_length) if md is not None and md.general_desc is not None else ()


def _possible_international(pn: Any, digits: str) -> bool:
    """libphonenumber's own possible-length table for the country code: ``is_possible_number`` without the
    cost of ``parse`` (the metadata is the library's; only the lookup is done here)."""
    for size in (1, 2, 3):
        regions = pn.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions:
            national = len(digits) - size
            return any(national in _possible_lengths(pn, r) for r in regions if r != "001") or (
                "001" in regions and 6 <= national <= 12
            )
    return False


@cache
def _national_prefix(pn: Any, region: str) -> str | None:
    """``region``'s national (trunk) prefix, ``""`` when it has none, ``None`` without metadata."""
    md = pn.PhoneMetadata.metadata_for_region(region)
    return None if md is None else (md.national_prefix or "")


def _possible_national(pn: Any, digits: str, region: str) -> bool:
    prefix = _national_prefix(pn, region)
    if prefix is None:
        return False
    national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
    return len(national) in _possible_lengths(pn, region)


def phone_valid(candidate: str, *, regions: tuple[str, ...] = REGIONS) -> bool:
    """Whether ``phonenumbers`` accepts ``candidate`` as a valid number (international, or in a region)."""
    pn = _phonenumbers()
    digits = "".join(filter(str.isdigit, candidate))
    if not 7 <= len(digits) <= 15 or _isbn(digits):
        return False
    if pn is None:  # without the library: the conservative length rule only
        return 10 <= len(digits) <= 15
    text = candidate.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        if text.startswith("+"):
            # An explicit country code: a possible length for that country is enough (fail closed: numbers
            # from ranges not yet assigned are still someone's number in a test or a typo).
            return _possible_international(pn, digits)
        ordered = _region_order(text, digits, regions)
        if _PHONE_SHAPED.fullmatch(text) and any(_possible_national(pn, digits, r) for r in ordered[:2]):
            # (589) 264-8278, 0171 234 5678: phone-shaped, possible in a region though not (yet) assigned.
            return True
        for region in ordered:
            if pn.is_valid_number(pn.parse(text, region)):
                return True
    except pn.NumberParseException:
        return False
    return False


def validate_phone(m: re.Match[str]) -> tuple[int, int] | None:
    """The cheap checks of a phone candidate (boundaries, dates, versions, IBAN groups, keyword)."""
    text = m.group()
    start, end = m.start(), m.end()
    if start > 0 and (m.string[start - 1] in _LEFT or m.string[start - 1].isalpha()):
        return None
    if text[0] == "(" and text[1:2] == "+":
        text, start = text[1:], start + 1
    if text.startswith("(") and ")" not in text:
        text, start = text[1:], start + 1
    if text.count("(") != text.count(")"):
        return None
    formatted = text.startswith(("+", "00")) or any(c in text for c in " ().-")
    if not formatted and not _has_keyword(m.string, start):
        return None  # every check here only rejects: the decisive one for bare digit runs goes first
    if (
        _DATE_LIKE.fullmatch(text)
        or _VERSION_LIKE.fullmatch(text)
        or _DECIMAL.fullmatch(text)
        or _IPV4_LIKE.fullmatch(text)
        or _DATED_BUILD.fullmatch(text)
    ):
        return None
    if _DATE_LIKE.match(text) and m.string[end : end + 1] == ":":
        return None  # a date and the hour of a time of day: 2023-05-12 14:37 is a timestamp (issue 21 F7)
    if start >= 4 and _IBAN_BEFORE.search(m.string, max(0, start - 40), start):
        return None  # the digit groups of an IBAN
    return start, end


def confirm_phone(text: str) -> bool:
    """The expensive half of :func:`validate_phone`, run only on candidates no other entity claimed."""
    return phone_valid(text[1:] if text[:2] == "(+" else text)


__all__ = ["PHONE_CANDIDATE", "REGIONS", "confirm_phone", "phone_valid", "validate_phone"]
