"""Bank accounts and payment cards: IBAN (ISO 13616 length table and mod-97) and card numbers (Luhn)."""

from __future__ import annotations

import re

from bastion.data import entities as E
from bastion.data.detectors._common import ALNUM, preceded_by, whole
from bastion.data.detectors.interface import Detector, Family

_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2])) + sum(_LUHN_DOUBLE[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_TOKEN = 24  # hex digits: a hash, a key id or a UUID part, not a card


def _in_hex_token(text: str, start: int, end: int) -> bool:
    """``text[start:end]`` is glued to hex letters inside a long hex string (``…afa4801796700638a36c…``)."""
    i, j = start, end
    while i > 0 and text[i - 1] in _HEX:
        i -= 1
    while j < len(text) and text[j] in _HEX:
        j += 1
    return (i < start or j > end) and j - i >= _HEX_TOKEN


def _v_card(m: re.Match[str]) -> tuple[int, int] | None:
    digits = re.sub(r"[ -]", "", m.group())
    if not 13 <= len(digits) <= 19 or digits[0] not in "3456" or not luhn_ok(digits):
        return None
    if _in_hex_token(m.string, m.start(), m.end()):
        return None  # the digit run of a SHA-256 / hex id (issue 21 attack21b F-DECOY)
    if len(digits) == 13 and digits[0] != "4":
        return (
            None  # only old Visa cards have 13 digits; other 13-digit runs are EAN-13 barcodes (issue 21 F7)
        )
    return whole(m)


IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}


_IBAN_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban_valid(compact: str) -> bool:
    """ISO 13616 check: known country length and mod-97 == 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    moved = (compact[4:] + compact[:4]).upper()
    return int(moved.translate(_IBAN_DIGITS)) % 97 == 1


def _v_iban(m: re.Match[str]) -> tuple[int, int] | None:
    if preceded_by(m, ALNUM):
        return None
    text = m.group()
    want = IBAN_LENGTHS.get(text[:2])
    if want is None:
        return None
    count = 0
    for i, ch in enumerate(text):
        if ch != " ":
            count += 1
            if count == want:
                compact = text[: i + 1].replace(" ", "")
                return (m.start(), m.start() + i + 1) if iban_valid(compact) else None
    return None


IBAN = Detector(E.IBAN, re.compile(r"[A-Z]{2}\d\d(?:[ ]?[A-Z0-9]){11,30}(?![a-z0-9])"), 0.95, _v_iban)
CARD = Detector(E.CREDIT_CARD, re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?!\d)"), 0.95, _v_card)

IBAN_FAMILY = Family(
    name="iban",
    entities=frozenset({E.IBAN}),
    members=(IBAN,),
    positives=(
        ("pay to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
    ),
    negatives=("DE89 3704 0044 0532 0130 01", "XX12 3456 7890 1234 5678 90", "SKU AB12CDEF3456789"),
)
CARD_FAMILY = Family(
    name="card",
    entities=frozenset({E.CREDIT_CARD}),
    members=(CARD,),
    positives=(
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
        ("5500-0000-0000-0004", "5500-0000-0000-0004"),
    ),
    negatives=("4111 1111 1111 1112", "ISBN 978-3-16-148410-0", "order 1234567890123456", "+44 20 7946 0958"),
)

__all__ = ["CARD", "CARD_FAMILY", "IBAN", "IBAN_FAMILY", "IBAN_LENGTHS", "iban_valid", "luhn_ok"]
