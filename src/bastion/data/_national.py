"""National identifiers with check digits, passports and driving licences.

Check digits are verified with `python-stdnum` (Verhoeff for Aadhaar, mod 11 for CPF/CNPJ/BSN, ISO 7064 for
the Steuer-ID, mod 97 for the French NIR, the letter tables of the Spanish DNI/NIE and the Italian codice
fiscale, Luhn for the Canadian SIN, ISO 7064 mod 11-2 for the Chinese resident id, the Korean RRN weights);
the UK NINO has no check digit and is checked against HMRC's prefix rules.

Two strengths:

* *Strong* formats are specific enough (letters in fixed places, separators, embedded dates, check
  characters) to be found anywhere.
* *Weak* formats are bare digit runs that pass a 1-in-10 (or 1-in-11) check by chance (BSN, SIN without
  dashes, Aadhaar without spaces, Steuer-ID): in free text they need a keyword nearby ("BSN", "Aadhaar",
  "SIN", "Steuer-ID" …); in a column, the column name or the share of valid values
  (:func:`weak_id_column`: 80 % of the cells validating is far above the 10 % chance rate).

Passports and driving licences have no check digit in most countries: they are found by country patterns
with a keyword nearby ("passport", "Reisepass", "passeport", "pasaporte" …) or by column name, except the UK
DVLA licence number whose 16-character structure is specific.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

NATIONAL_ID = "NATIONAL_ID"
PASSPORT = "PASSPORT"
DRIVER_LICENSE = "DRIVER_LICENSE"

_ID_CONTEXT = re.compile(
    r"(?i)(?:\bid\b|\bno\b|n[°º]|number|num[ée]ro|nummer|numero|bsn|sofi|burgerservice|\bsin\b|"
    r"social insurance|"
    r"aadhaa?r|uidai|steuer|idnr|identifika|\bcpf\b|\bcnpj\b|\bnir\b|insee|s[ée]cu|\bdni\b|\bnie\b|\bnif\b|"
    r"fiscale|\bcf\b|resident|identity|citizen|\brrn\b|주민|身份|national|nino|\bni\b|insurance|tax)"
)
_PASSPORT_CONTEXT = re.compile(
    r"(?i)(passport|reisepass|pass-?nr|passeport|pasaporte|passaporto|paspoort|passaporte|paszport|"
    r"паспорт|护照|パスポート|여권|travel document)"
)
_LICENCE_CONTEXT = re.compile(
    r"(?i)(driv(?:er|ing)'?s?[ _-]?licen[cs]e|\bdl\b|licen[cs]e (?:no|number|#)|f[üu]hrerschein|"
    r"permis de conduire|carn[eé] de conducir|licencia de conducir|patente di guida|rijbewijs|"
    r"carteira de habilita|\bcnh\b|prawo jazdy)"
)


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


_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(value: str) -> bool:
    """HMRC's format rules for a National Insurance number (it has no check digit)."""
    v = re.sub(r"[ -]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", v):
        return False
    a, b = v[0], v[1]
    return a not in "DFIQUV" and b not in "DFIOQUV" and v[:2] not in _NINO_BAD_PREFIX


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
        self.pattern = re.compile(pattern)
        self.check = check
        self.context = context


def _std_check(cc: str, name: str) -> Callable[[str], bool]:
    return lambda v: _stdnum_ok(cc, name, v)


_B = r"(?<![\w./-])"  # left boundary: not inside a longer token
_E = r"(?![\w]|[./-]\w)"  # right boundary

FORMATS: tuple[IdFormat, ...] = (
    # ---- strong: structure plus a check -------------------------------------------------------------
    IdFormat(
        "gb.nino", NATIONAL_ID, _B + r"[A-Za-z]{2}[ ]?\d\d[ ]?\d\d[ ]?\d\d[ ]?[A-Da-d]" + _E, nino_valid
    ),
    IdFormat("br.cpf", NATIONAL_ID, _B + r"\d{3}\.\d{3}\.\d{3}-\d\d" + _E, _std_check("br", "cpf")),
    IdFormat("br.cnpj", NATIONAL_ID, _B + r"\d\d\.\d{3}\.\d{3}/\d{4}-\d\d" + _E, _std_check("br", "cnpj")),
    IdFormat(
        "fr.nir",
        NATIONAL_ID,
        _B + r"[12][ ]?\d\d[ ]?(?:0[1-9]|1[0-2]|[2-9]\d)[ ]?(?:\d\d|2[AB])[ ]?\d{3}[ ]?\d{3}[ ]?\d\d" + _E,
        _std_check("fr", "nir"),
    ),
    IdFormat("es.dni", NATIONAL_ID, _B + r"\d{8}[ -]?[A-Za-z]" + _E, _std_check("es", "dni")),
    IdFormat("es.nie", NATIONAL_ID, _B + r"[XYZxyz][ -]?\d{7}[ -]?[A-Za-z]" + _E, _std_check("es", "nie")),
    IdFormat(
        "it.codicefiscale",
        NATIONAL_ID,
        _B
        + r"[A-Za-z]{6}[0-9LMNPQRSTUV]{2}[A-Za-z][0-9LMNPQRSTUV]{2}[A-Za-z][0-9LMNPQRSTUV]{3}[A-Za-z]"
        + _E,
        _std_check("it", "codicefiscale"),
    ),
    IdFormat("cn.ric", NATIONAL_ID, _B + r"\d{17}[\dXx]" + _E, _std_check("cn", "ric")),
    IdFormat("kr.rrn", NATIONAL_ID, _B + r"\d{6}-[1-4]\d{6}" + _E, _std_check("kr", "rrn")),
    IdFormat(
        "ca.sin", NATIONAL_ID, _B + r"\d{3}[ -]\d{3}[ -]\d{3}" + _E, _std_check("ca", "sin"), _ID_CONTEXT
    ),
    IdFormat(
        "in.aadhaar", NATIONAL_ID, _B + r"[2-9]\d{3}[ -]\d{4}[ -]\d{4}" + _E, _std_check("in", "aadhaar")
    ),
    IdFormat("de.idnr", NATIONAL_ID, _B + r"\d\d[ ]\d{3}[ ]\d{3}[ ]\d{3}" + _E, _std_check("de", "idnr")),
    IdFormat("pl.pesel", NATIONAL_ID, _B + r"\d{11}" + _E, _std_check("pl", "pesel"), _ID_CONTEXT),
    # ---- weak: bare digits, keyword needed in free text ----------------------------------------------
    IdFormat("nl.bsn", NATIONAL_ID, _B + r"\d{4}\.?\d\d\.?\d{3}" + _E, _std_check("nl", "bsn"), _ID_CONTEXT),
    IdFormat("ca.sin", NATIONAL_ID, _B + r"\d{9}" + _E, _std_check("ca", "sin"), _ID_CONTEXT),
    IdFormat("in.aadhaar", NATIONAL_ID, _B + r"[2-9]\d{11}" + _E, _std_check("in", "aadhaar"), _ID_CONTEXT),
    IdFormat("de.idnr", NATIONAL_ID, _B + r"\d{11}" + _E, _std_check("de", "idnr"), _ID_CONTEXT),
    # ---- travel and driving documents ----------------------------------------------------------------
    IdFormat(
        "gb.dvla",
        DRIVER_LICENSE,
        _B + r"[A-Z9]{5}\d[0156]\d[0-3]\d\d[A-Z9]{2}\d[A-Z]{2}(?:\d\d)?" + _E,
        lambda v: True,
    ),
    IdFormat(
        "passport",
        PASSPORT,
        _B + r"(?:[A-Z]{0,3}[ ]?\d{6,9}[A-Z]?|(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{8,9})" + _E,
        lambda v: True,
        _PASSPORT_CONTEXT,
    ),
    IdFormat(
        "driving-licence",
        DRIVER_LICENSE,
        _B + r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{5,17}[A-Z0-9]" + _E,
        lambda v: sum(c.isdigit() for c in v) >= 4,
        _LICENCE_CONTEXT,
    ),
)

_CONTEXT_WINDOW = 48


def _has_context(m: re.Match[str], context: re.Pattern[str]) -> bool:
    text = m.string
    start = max(0, m.start() - _CONTEXT_WINDOW)
    cut = text.rfind("\x00", start, m.start())  # never look into the previous cell
    return context.search(text, cut + 1 if cut >= 0 else start, m.start()) is not None


def id_validator(fmt: IdFormat) -> Callable[[re.Match[str]], tuple[int, int] | None]:
    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        if fmt.context is not None and not _has_context(m, fmt.context):
            return None
        return (m.start(), m.end()) if fmt.check(m.group()) else None

    return validate


def id_formats_for(entity: str) -> tuple[IdFormat, ...]:
    return tuple(f for f in FORMATS if f.entity == entity)


def weak_id_column(values: Sequence[str], *, min_share: float = 0.8) -> tuple[str, str] | None:
    """(entity, format) when most non-empty values validate as one identifier format on their own.

    A random digit string passes a check digit about one time in ten, so a share of 80 % is evidence of an
    identifier column whatever its name; passports and licences are not decided this way (no check digit).
    """
    cells = [v.strip() for v in values if v.strip()]
    if len(cells) < 5:
        return None
    for fmt in FORMATS:
        if fmt.entity != NATIONAL_ID:
            continue
        ok = sum(1 for v in cells if fmt.pattern.fullmatch(v) and fmt.check(v))
        if ok >= min_share * len(cells):
            return fmt.entity, fmt.name
    return None


__all__ = [
    "DRIVER_LICENSE",
    "FORMATS",
    "NATIONAL_ID",
    "PASSPORT",
    "IdFormat",
    "id_formats_for",
    "id_validator",
    "nino_valid",
    "weak_id_column",
]
