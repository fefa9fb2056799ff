"""Fast PII detectors: compiled patterns plus validators, run over whole column chunks at once.

A column chunk is joined into one string (values separated by NUL, which no pattern matches) and every
detector runs one ``finditer`` over it; match positions map back to row indices with a binary search over
the value offsets. Python work is spent only on candidate matches (validators: Luhn, IBAN mod-97, SSN area
rules, IP parsing, calendar dates, name lists, entropy), never per cell.

Sample-and-confirm: on a long chunk the first ``sample`` values are scanned with every detector; when one
entity covers at least 90 % of the sampled values (a typed column such as ``email``), the rest of the chunk is
confirmed with only the detectors that fired in the sample. Free-text and mixed columns always get every
detector.

Column context: column names (``dob``, ``ssn``, ``first_name``, ``zip``, ``password`` …) and value
distributions (values that look like personal names) add column-level detections that patterns alone miss.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import NamedTuple

import numpy as np

from bastion.data import entities as E
from bastion.data._address import STREET_LINE, address_spans
from bastion.data._dates import COMPACT_DATE, DATE_PATTERN, MONTH_FIRST_DATE, date_valid, validate_date
from bastion.data._names import name_like_value, person_spans
from bastion.data._national import FORMATS as ID_FORMATS
from bastion.data._national import context_finder, id_validator, weak_id_column
from bastion.data._phones import PHONE_CANDIDATE, confirm_phone, validate_phone

SEP = "\x00"


class Span(NamedTuple):
    """A detected entity at ``[start, end)`` of a text."""

    entity: str
    start: int
    end: int
    confidence: float
    source: str


@dataclass(frozen=True)
class Detector:
    """One compiled pattern and an optional validator over the matched text (or a group of it)."""

    entity: str
    pattern: re.Pattern[str]
    confidence: float
    validate: Callable[[re.Match[str]], tuple[int, int] | list[tuple[int, int]] | None] | None = None
    prefilter: str | None = None  # a character that must occur in the text for the detector to run
    source: str = "pattern"
    # A whole-text finder instead of pattern + validator: (start, end, confidence) per finding.
    finder: Callable[[str], list[tuple[int, int, float]]] | None = None
    # An expensive check run only on the candidates that survive overlap resolution (see ``finalize``).
    confirm: Callable[[str], bool] | None = None


# ---------------------------------------------------------------------------------------------- validators


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn_ok(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2])) + sum(_LUHN_DOUBLE[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


def _whole(m: re.Match[str]) -> tuple[int, int]:
    return m.start(), m.end()


_WORDISH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+/=-")


def _preceded_by(m: re.Match[str], chars: frozenset[str], group: int = 0) -> bool:
    i = m.start(group)
    return i > 0 and m.string[i - 1] in chars


def _bounded(chars: frozenset[str]) -> Callable[[re.Match[str]], tuple[int, int] | None]:
    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        return None if _preceded_by(m, chars) else _whole(m)

    return validate


def _v_ipv4(m: re.Match[str]) -> tuple[int, int] | None:
    if m.start() > 0 and m.string[m.start() - 1] in "0123456789.":
        return None
    for part in m.group().split("."):
        if int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            return None
    return _whole(m)


def _v_card(m: re.Match[str]) -> tuple[int, int] | None:
    digits = re.sub(r"[ -]", "", m.group())
    if not 13 <= len(digits) <= 19 or digits[0] not in "3456" or not _luhn_ok(digits):
        return None
    return _whole(m)


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
    if _preceded_by(m, _ALNUM):
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


def ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _v_ssn(m: re.Match[str]) -> tuple[int, int] | None:
    return _whole(m) if ssn_valid(m.group()[:3], m.group(3), m.group(4)) else None


def _v_ipv6(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if len(text) < 3 or text.count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return _whole(m)


_BIRTH_CONTEXT = re.compile(
    r"(?i)(born|birth|\bdob\b|d\.o\.b|geboren|geburt|n[ée]e? le|naissance|nacimiento|nacid[oa]|nato|nata|"
    r"nascita|nascido|geboortedatum|生年月日|出生|생년월일)"
)


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


PROTECTED_PREFIXES = ("tok_", "hmac_")


def _v_entropy(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if _preceded_by(m, _TOKEN_CHARS) or text.startswith(PROTECTED_PREFIXES):
        return None
    has_digit = any(c.isdigit() for c in text)
    has_upper = any(c.isupper() for c in text)
    has_lower = any(c.islower() for c in text)
    if not (has_digit and has_upper and has_lower) or _entropy(text) < 4.2:
        return None
    return _whole(m)


_SECRET_KEY = re.compile(r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|access[_-]?key)[\"']?[ ]*$")


def _v_kv_secret(m: re.Match[str]) -> tuple[int, int] | None:
    if m.group(1).startswith(PROTECTED_PREFIXES):
        return None
    if not _SECRET_KEY.search(m.string, max(0, m.start() - 24), m.start()):
        return None
    return m.start(1), m.end(1)


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """The shipped given-name and surname lists (``names.txt``)."""
    first: set[str] = set()
    last: set[str] = set()
    text = resources.files("bastion.data").joinpath("names.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("F "):
            first.add(line[2:].strip())
        elif line.startswith("L "):
            last.add(line[2:].strip())
    return frozenset(first), frozenset(last)


# ------------------------------------------------------------------------------------------------ patterns


def _v_compact_birth(m: re.Match[str]) -> tuple[int, int] | None:
    """Bare ``19820303`` only next to a birth keyword (otherwise it is an order number or a serial)."""
    lo = max(0, m.start() - 30)
    cut = m.string.rfind(SEP, lo, m.start())
    if not _BIRTH_CONTEXT.search(m.string, cut + 1 if cut >= 0 else lo, m.start()):
        return None
    return _whole(m)


def _address_finder(text: str) -> list[tuple[int, int, float]]:
    return [(a, b, 0.8) for a, b in address_spans(text)]


_NEVER = re.compile(r"(?!)")
_DEFERRED = "pattern?"  # the source of a candidate whose detector's ``confirm`` has not run yet
_CONFIRMERS: dict[str, Callable[[str], bool]] = {}
_DATE_RE = DATE_PATTERN.pattern

# Patterns start with a literal or a character class (boundary checks live in the validators) so that the
# regex engine can skip ahead to candidate positions instead of trying every offset.
DETECTORS: tuple[Detector, ...] = (
    Detector(
        E.SECRET,
        re.compile(
            r"(?:AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
            r"|github_pat_[A-Za-z0-9_]{50,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{20,}"
            r"|rk_live_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
            r"|glpat-[A-Za-z0-9_-]{20}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
            r"|-----BEGIN[A-Z ]{0,20}PRIVATE KEY-----)"
        ),
        0.95,
        _bounded(_TOKEN_CHARS),
    ),
    Detector(E.SECRET, re.compile(r"[:=][ ]*[\"']?([^\s\"',;\x00]{8,})"), 0.8, _v_kv_secret),
    Detector(E.SECRET, re.compile(r"[A-Za-z0-9_+/=-]{32,256}"), 0.6, _v_entropy),
    Detector(
        E.EMAIL,
        re.compile(
            r"[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
            r"[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
        0.95,
        prefilter="@",
    ),
    Detector(E.IBAN, re.compile(r"[A-Z]{2}\d\d(?:[ ]?[A-Z0-9]){11,30}(?![a-z0-9])"), 0.95, _v_iban),
    Detector(E.CREDIT_CARD, re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?!\d)"), 0.95, _v_card),
    Detector(E.US_SSN, re.compile(r"\d(?<![\d-]\d)(\d\d)([- ])(\d\d)\2(\d{4})(?![\d-])"), 0.85, _v_ssn),
    Detector(
        E.IP_ADDRESS,
        re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\d|\.\d)"),
        0.9,
        _v_ipv4,
        prefilter=".",
    ),
    Detector(
        E.IP_ADDRESS,
        re.compile(r"[0-9A-Fa-f:](?<![\w:][0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,7}(?![\w:])"),
        0.9,
        _v_ipv6,
        prefilter=":",
    ),
    Detector(E.PHONE, PHONE_CANDIDATE, 0.8, validate_phone, source=_DEFERRED, confirm=confirm_phone),
    Detector(E.DATE, DATE_PATTERN, 0.6, validate_date),
    Detector(E.DATE, MONTH_FIRST_DATE, 0.6, validate_date),
    Detector(E.DATE_OF_BIRTH, COMPACT_DATE, 0.6, _v_compact_birth),
    Detector(
        E.MAC_ADDRESS,
        re.compile(r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])"),
        0.8,
        _bounded(_WORDISH),
        prefilter=None,
    ),
    *(
        Detector(f.entity, f.pattern, 0.85, id_validator(f), source=f"id:{f.name}")
        if f.context is None
        else Detector(f.entity, _NEVER, 0.85, source=f"id:{f.name}", finder=context_finder(f))
        for f in ID_FORMATS
    ),
    Detector(E.STREET_ADDRESS, STREET_LINE, 0.8, finder=_address_finder),
    Detector(E.PERSON, _NEVER, 0.75, source="names", finder=person_spans),
)

_CONFIRMERS.update({d.entity: d.confirm for d in DETECTORS if d.confirm is not None})

PRIORITY: dict[str, int] = {
    e: i
    for i, e in enumerate(
        [
            E.SECRET,
            E.EMAIL,
            E.IBAN,
            E.CREDIT_CARD,
            E.US_SSN,
            E.NATIONAL_ID,
            E.PASSPORT,
            E.DRIVER_LICENSE,
            E.IP_ADDRESS,
            E.MAC_ADDRESS,
            E.PHONE,
            E.DATE_OF_BIRTH,
            E.DATE,
            E.STREET_ADDRESS,
            E.PERSON,
        ]
    )
}


def _extra_detectors() -> tuple[Detector, ...]:
    from bastion.data.presidio import presidio_detectors

    return presidio_detectors()


def all_detectors(*, use_presidio: bool = True) -> tuple[Detector, ...]:
    return DETECTORS + (_extra_detectors() if use_presidio else ())


def _run(det: Detector, text: str, out: list[Span]) -> None:
    if det.prefilter is not None and det.prefilter not in text:
        return
    if det.finder is not None:
        out.extend(Span(det.entity, a, b, c, det.source) for a, b, c in det.finder(text) if b > a)
        return
    validate = det.validate
    for m in det.pattern.finditer(text):
        if validate is None:
            out.append(Span(det.entity, m.start(), m.end(), det.confidence, det.source))
        else:
            pos = validate(m)
            if pos is None:
                continue
            if isinstance(pos, list):
                out.extend(Span(det.entity, a, b, det.confidence, det.source) for a, b in pos)
            elif pos[1] > pos[0]:
                out.append(Span(det.entity, pos[0], pos[1], det.confidence, det.source))


def finalize(spans: list[Span], text: str) -> list[Span]:
    """Resolve overlaps, then confirm the deferred candidates that won (phones: ``phonenumbers``).

    A candidate that fails its confirmation is removed and the overlaps resolved again, so a span it had
    hidden (a date, a name) comes back. Candidates that lost to a higher-priority entity (an identifier, a
    card, an IBAN) are never confirmed: that is where the time goes otherwise.
    """
    pool = spans
    verdict: dict[tuple[int, int, str], bool] = {}
    while True:
        kept = resolve_overlaps(list(pool))
        rejected = set()
        for i, sp in enumerate(kept):
            if sp.source != _DEFERRED:
                continue
            key = (sp.start, sp.end, sp.entity)
            if key not in verdict:
                verdict[key] = _CONFIRMERS[sp.entity](text[sp.start : sp.end])
            if verdict[key]:
                kept[i] = sp._replace(source="pattern")
            else:
                rejected.add(key)
        if not rejected:
            return kept
        pool = [sp for sp in pool if (sp.start, sp.end, sp.entity) not in rejected]


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep non-overlapping spans: on overlap the higher-priority entity wins, then the longer span."""
    if not spans:
        return spans
    spans.sort(key=lambda s: (s.start, -s.end))
    kept: list[Span] = []
    for s in spans:
        if kept and s.start < kept[-1].end:
            prev = kept[-1]
            if (PRIORITY.get(s.entity, 50), -(s.end - s.start)) < (
                PRIORITY.get(prev.entity, 50),
                -(prev.end - prev.start),
            ):
                kept[-1] = s
            continue
        kept.append(s)
    return kept


def _birth_context(text: str, spans: list[Span]) -> list[Span]:
    out = []
    for s in spans:
        if s.entity == E.DATE and _BIRTH_CONTEXT.search(text, max(0, s.start - 30), s.start):
            s = s._replace(entity=E.DATE_OF_BIRTH, confidence=0.8)
        out.append(s)
    return out


def detect_text(text: str, *, detectors: Sequence[Detector] | None = None) -> list[Span]:
    """Entity spans in free text, overlaps resolved. Dates near 'born'/'DOB' become DATE_OF_BIRTH."""
    found: list[Span] = []
    for det in detectors if detectors is not None else all_detectors():
        _run(det, text, found)
    return _birth_context(text, finalize(found, text))


# ----------------------------------------------------------------------------------------- column context


def _norm_name(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


_ANY_VALUE = re.compile(r"[^\x00]*[^\x00\s][^\x00]*")
_PERSON_SHAPE = re.compile(r"[^\x00\d@]{1,80}")
_NAME_HINTS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    (
        E.SECRET,
        re.compile(
            r"(^|_)(password|passwd|passwort|pwd|secret|api_?key|apikey|token|access_?key|private_?key|"
            r"credentials?|pin|otp|passcode|mot_de_passe|contrasena)(_|$)"
        ),
        re.compile(r"[^\x00]{4,}"),
    ),
    (
        E.US_SSN,
        re.compile(r"(^|_)(ssn|social_security(_number)?)(_|$)"),
        re.compile(r"\d{3}[- ]?\d\d[- ]?\d{4}"),
    ),
    (
        E.PASSPORT,
        re.compile(r"(^|_)(passport|passeport|pasaporte|passaporto|reisepass|paspoort|travel_doc\w*)"),
        re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{4,14}[A-Za-z0-9]"),
    ),
    (
        E.DRIVER_LICENSE,
        re.compile(
            r"(^|_)(driv\w*_?licen[cs]e\w*|dl_?(no|num|number)?|licen[cs]e_?(no|num|number)|"
            r"fuehrerschein|fuhrerschein|permis\w*|rijbewijs|cnh)(_|$)"
        ),
        re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{4,20}[A-Za-z0-9]"),
    ),
    (
        E.NATIONAL_ID,
        re.compile(
            r"(^|_)(national_?id\w*|nin|nino|ni_?number|aadhaa?r|uid|cpf|cnpj|steuer_?id|steuerid|tax_?id|tin|"
            r"idnr|nir|insee|secu\w*|dni|nie|nif|codice_?fiscale|cf|fiscal_?code|bsn|sofi|sin|rrn|ric|"
            r"resident_?id|citizen_?id|id_?(card|number|no|nr)|identity\w*|personal_?id|personnummer|pesel|"
            r"cpr|curp|rut|tc_?kimlik|pps|tfn|hetu|cnp)(_|$)"
        ),
        re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./-]{4,22}[A-Za-z0-9]"),
    ),
    (
        E.DATE_OF_BIRTH,
        re.compile(
            r"(^|_)(dob|birth|born|birthday|birthdate|date_of_birth|geburtsdatum|geburtstag|"
            r"date_de_naissance|naissance|fecha_de_nacimiento|nacimiento|data_di_nascita|nascita|"
            r"geboortedatum|data_de_nascimento)(_|$)"
        ),
        _ANY_VALUE,
    ),
    (
        E.PHONE,
        re.compile(
            r"(^|_)(phone|mobile|cell|tel|telephone|fax|telefon|telefono|telefone|handy|portable|msisdn)"
        ),
        re.compile(r"[+(]?[\d ()./-]{6,24}(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?"),
    ),
    (
        E.EMAIL,
        re.compile(r"(^|_)(e_?mail|mail|courriel|correo)(_|$)"),
        re.compile(r"[^\x00\s]+@[^\x00\s]+"),
    ),
    (
        E.PERSON,
        re.compile(
            r"^(name|surname|forename|fullname|firstname|lastname|nom|prenom|nombre|apellidos?|vorname|"
            r"nachname|cognome|naam|achternaam|voornaam|sobrenome|signatory|holder|recipient|beneficiary)$"
            r"|(^|_)(first|last|full|given|family|middle|maiden|customer|client|contact|patient|employee|"
            r"user|person|account_?holder|card_?holder|recipient|sender|guardian|spouse|emergency_contact|"
            r"next_of_kin|owner|beneficiary|driver|passenger)_?(name|nom|nombre)s?$"
        ),
        _PERSON_SHAPE,
    ),
    (
        E.STREET_ADDRESS,
        re.compile(
            r"(^|_)(address|street|addr|address_line_?\d?|street_address|shipping|billing|ship_to|bill_to|"
            r"mailing|postal_address|adresse|direccion|indirizzo|endereco|anschrift|adres|residence|home)(_|$)"
        ),
        re.compile(r"[^\x00]*[^\x00\d\W][^\x00]*"),
    ),
    (
        E.ZIP_CODE,
        re.compile(r"(^|_)(zip|zipcode|zip_code|postcode|post_code|postal|postal_code|plz|cp|cap)(_|$)"),
        re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{1,9}"),
    ),
    (E.AGE, re.compile(r"(^|_)age(_|$)"), re.compile(r"1[01]\d|120|\d?\d|\d0-\d9|\d\d?-\d\d?")),
    (E.GENDER, re.compile(r"(^|_)(gender|sex)(_|$)"), re.compile(r"[A-Za-z -]{1,20}")),
    (
        E.DATE,
        re.compile(r"(^|_)(visit|admission|admitted|discharge|discharged|death|deceased|hire|hired)(_|$)"),
        re.compile(_DATE_RE + r"|(?:19|20)\d\d-(?:0[1-9]|1[0-2])|(?:19|20)\d\d"),
    ),
)
_PERSON_HINT = next(h for h in _NAME_HINTS if h[0] == E.PERSON)
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./-]{4,22}[A-Za-z0-9]")


def column_hints(column: str | None) -> list[tuple[str, re.Pattern[str]]]:
    """Entities a column's name suggests, with the value shape each one expects."""
    if not column:
        return []
    norm = _norm_name(column)
    return [(entity, shape) for entity, name_re, shape in _NAME_HINTS if name_re.search(norm)]


def _drop_stray_names(
    spans: list[Span], values: Sequence[str], hinted: set[str], non_empty: int
) -> list[Span]:
    """In a column of short values, a few name-looking cells and nothing else are not evidence of names
    ("San Francisco" in a city column, "Max" in a product column): the column-level tests decide instead."""
    if E.PERSON in hinted or not spans:
        return spans
    names = sum(1 for s in spans if s.entity == E.PERSON)
    if names == 0 or names >= 0.3 * max(non_empty, 1) or any(s.entity != E.PERSON for s in spans):
        return spans
    sample = [v for v in values[:256] if v]
    if sum(1 for v in sample if v.count(" ") >= 5) >= 0.3 * max(len(sample), 1):
        return spans  # prose: a name in a sentence is a name
    return []


def looks_like_names(values: Sequence[str]) -> bool:
    """Value distribution test: most non-empty values are shaped like names and many use known name words.

    Full names ("Given Family", several words) need 60 % shaped and 40 % with a known word, or 90 % shaped,
    80 % of two words or more, 15 % known and half the values distinct (names mostly outside the lists:
    product or city columns repeat their values); single words (a given-name or family-name column without
    a telling header) need 80 % known.
    """
    seen = shaped = known = multi = 0
    for v in values:
        if not v:
            continue
        seen += 1
        is_shape, is_known = name_like_value(v)
        shaped += is_shape
        known += is_shape and is_known
        multi += is_shape and (" " in v.strip())
    if seen < 5:
        return False
    distinct = len({v for v in values if v})
    if multi >= 0.8 * seen and shaped >= 0.9 * seen and known >= 0.15 * seen and distinct >= 0.5 * seen:
        return True  # "Given Family" in nearly every cell, a few known words: mostly names outside the lists
    if multi >= 0.5 * seen:
        return shaped >= 0.6 * seen and known >= 0.4 * seen and distinct >= 0.3 * seen
    return shaped >= 0.8 * seen and known >= 0.8 * seen


# ------------------------------------------------------------------------------------------ column chunks


def masked_shape(value: str) -> str:
    """Letters become a/A, digits 9, runs of letters collapse ('john.doe@x.org' -> 'a+.a+@a.a+')."""
    shape = value.translate(_SHAPE_TABLE)
    return re.sub(r"([aA])\1+", r"\1+", shape)[:40]


_SHAPE_TABLE = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "a" * 26 + "A" * 26 + "9" * 10,
)


@dataclass(frozen=True)
class EntityHits:
    """Where one entity was found in a column chunk: unique row indices, never the values."""

    entity: str
    rows: np.ndarray
    full: int  # rows where the entity is (nearly) the whole value
    confidence: float
    source: str
    shapes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnHits:
    """Detections in one chunk of one column; ``span_*`` arrays give (row, start, end, entity) per value."""

    column: str | None
    n_values: int
    n_non_empty: int
    total_chars: int
    entities: dict[str, EntityHits] = field(default_factory=dict)
    span_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    span_entities: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def spans_by_row(self) -> dict[int, list[tuple[int, int, str]]]:
        """(start, end, entity) within each value, keyed by row; whole-cell detections span the value."""
        out: dict[int, list[tuple[int, int, str]]] = {}
        for r, a, b, e in zip(
            self.span_rows.tolist(),
            self.span_starts.tolist(),
            self.span_ends.tolist(),
            self.span_entities.tolist(),
            strict=True,
        ):
            out.setdefault(r, []).append((a, b, e))
        return out


def _offsets(values: Sequence[str]) -> np.ndarray:
    lengths = np.fromiter((len(v) + 1 for v in values), dtype=np.int64, count=len(values))
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def detect_values(
    values: Sequence[str],
    *,
    column: str | None = None,
    sample: int = 128,
    detectors: Sequence[Detector] | None = None,
) -> ColumnHits:
    """Detect entities in one column chunk (a sequence of strings; empty string = missing)."""
    dets = tuple(detectors) if detectors is not None else all_detectors()
    n = len(values)
    joined = SEP.join(values)
    offsets = _offsets(values)
    non_empty = n - sum(1 for v in values if not v) if n else 0

    active = dets
    sampled: list[Span] = []  # the sample's findings, kept: its rows are not scanned twice
    rest_from = 0
    if n > 2 * sample:
        sample_text = joined[: int(offsets[sample]) - 1]
        sample_spans: list[Span] = []
        owner: dict[tuple[int, int, str], int] = {}
        for i, det in enumerate(dets):
            found_here: list[Span] = []
            _run(det, sample_text, found_here)
            owner.update(((sp.start, sp.end, sp.entity), i) for sp in found_here)
            sample_spans.extend(found_here)
        sample_spans = finalize(sample_spans, sample_text)
        full_by_entity: Counter[str] = Counter()
        for sp in sample_spans:
            row = bisect.bisect_right(offsets, sp.start, 0, sample + 1) - 1
            if (sp.end - sp.start) >= 0.8 * (int(offsets[row + 1]) - int(offsets[row]) - 1):
                full_by_entity[sp.entity] += 1
        sample_non_empty = sum(1 for v in values[:sample] if v)
        typed = bool(full_by_entity) and max(full_by_entity.values()) >= 0.9 * max(sample_non_empty, 1)
        if not typed and sample_non_empty:
            # A column whose name says it holds a sensitive entity and whose values have that shape is
            # decided (it is protected whole); the rest needs only the detectors that fired in the sample.
            for entity, shape in column_hints(column):
                if entity in E.PII_ENTITIES or entity in E.SECRET_ENTITIES:
                    fits = sum(1 for v in values[:sample] if v and shape.fullmatch(v))
                    typed = typed or fits >= 0.8 * sample_non_empty
        if typed:
            # A typed column: confirm the rest with the detectors whose findings survived in the sample.
            winners = {owner[(sp.start, sp.end, sp.entity)] for sp in sample_spans}
            active = tuple(d for i, d in enumerate(dets) if i in winners)
        sampled = sample_spans
        rest_from = int(offsets[sample])

    rest = joined[rest_from:] if rest_from else joined
    found: list[Span] = []
    for det in active:
        _run(det, rest, found)
    spans = finalize(found, rest)
    if rest_from:
        spans = sampled + [s._replace(start=s.start + rest_from, end=s.end + rest_from) for s in spans]

    hints = column_hints(column)
    hinted = {entity for entity, _ in hints}
    spans = _drop_stray_names(spans, values, hinted, non_empty)
    if any(s.entity == E.DATE for s in spans):
        if E.DATE_OF_BIRTH in hinted:
            spans = [s._replace(entity=E.DATE_OF_BIRTH) if s.entity == E.DATE else s for s in spans]
        else:
            spans = _birth_context(joined, spans)

    m = len(spans)
    starts = np.fromiter((s.start for s in spans), dtype=np.int64, count=m)
    ends = np.fromiter((s.end for s in spans), dtype=np.int64, count=m)
    ent_names = sorted({s.entity for s in spans})
    ent_idx = {e: i for i, e in enumerate(ent_names)}
    codes = np.fromiter((ent_idx[s.entity] for s in spans), dtype=np.int64, count=m)
    rows = np.searchsorted(offsets, starts, side="right") - 1
    base = offsets[rows]
    vlen = offsets[rows + 1] - base - 1
    is_full = (ends - starts) >= 0.8 * vlen
    per: dict[str, np.ndarray] = {}
    full: Counter[str] = Counter()
    conf: dict[str, float] = {}
    src: dict[str, str] = {}
    shapes: dict[str, Counter[str]] = {}
    for e, i in ent_idx.items():
        sel = codes == i
        per[e] = rows[sel]
        full[e] = int(np.count_nonzero(is_full[sel]))
        first = np.flatnonzero(sel)[:50].tolist()
        conf[e] = max(spans[k].confidence for k in first)
        src[e] = spans[first[0]].source
        shapes[e] = Counter(masked_shape(joined[spans[k].start : spans[k].end]) for k in first)
    span_arrays = [
        (rows, starts - base, ends - base, np.asarray(ent_names, dtype=object)[codes] if m else codes)
    ]

    # Column context: name hints confirmed by value shape, and name-like value distributions.
    context: list[tuple[str, re.Pattern[str]]] = list(hints)
    if E.PERSON not in hinted and looks_like_names(values[:sample]):
        context.append((E.PERSON, _PERSON_HINT[2]))
    if E.NATIONAL_ID not in hinted and E.NATIONAL_ID not in ent_idx:
        weak = weak_id_column(values[:sample])
        if weak is not None:
            context.append((E.NATIONAL_ID, _ID_SHAPE))
    for entity, shape in context:
        # Already-protected cells (tokens, keyed hashes) are not raw values.
        anchored = re.compile(r"(?:(?<=\x00)|^)(?!tok_|hmac_)(?:" + shape.pattern + r")(?=\x00|$)")
        found_at = [mt.start() for mt in anchored.finditer(joined) if mt.end() > mt.start()]
        if not found_at:
            continue
        hint_rows = np.unique(
            np.searchsorted(offsets, np.asarray(found_at, dtype=np.int64), side="right") - 1
        )
        # Cells already claimed by a pattern (e.g. an email in a 'contact_name') stay as they are.
        claimed = np.unique(np.concatenate([rows, per.get(entity, np.zeros(0, dtype=np.int64))]))
        new = np.setdiff1d(hint_rows, claimed, assume_unique=True)
        if not len(new) and entity in per:
            continue
        per[entity] = np.concatenate([per.get(entity, np.zeros(0, dtype=np.int64)), new])
        full[entity] += len(new)
        conf[entity] = max(conf.get(entity, 0.0), 0.8 if entity in hinted else 0.7)
        src.setdefault(entity, "column-name" if entity in hinted else "value-distribution")
        sh = shapes.setdefault(entity, Counter())
        for r in new[:50].tolist():
            sh[masked_shape(values[r])] += 1
        lens = np.fromiter((len(values[r]) for r in new.tolist()), dtype=np.int64, count=len(new))
        span_arrays.append(
            (new, np.zeros(len(new), dtype=np.int64), lens, np.full(len(new), entity, dtype=object))
        )

    result: dict[str, EntityHits] = {}
    for entity, rws in per.items():
        uniq = np.unique(rws)
        result[entity] = EntityHits(
            entity=entity,
            rows=uniq,
            full=min(full[entity], len(uniq)),
            confidence=round(conf[entity], 3),
            source=src[entity],
            shapes=tuple(s for s, _ in shapes.get(entity, Counter()).most_common(3)),
        )
    return ColumnHits(
        column=column,
        n_values=n,
        n_non_empty=non_empty,
        total_chars=len(joined) - max(n - 1, 0),
        entities=result,
        span_rows=np.concatenate([a[0] for a in span_arrays]) if span_arrays else np.zeros(0, dtype=np.int64),
        span_starts=np.concatenate([a[1] for a in span_arrays])
        if span_arrays
        else np.zeros(0, dtype=np.int64),
        span_ends=np.concatenate([a[2] for a in span_arrays]) if span_arrays else np.zeros(0, dtype=np.int64),
        span_entities=np.concatenate([a[3] for a in span_arrays])
        if span_arrays
        else np.zeros(0, dtype=object),
    )


__all__ = [
    "DETECTORS",
    "SEP",
    "ColumnHits",
    "Detector",
    "EntityHits",
    "Span",
    "all_detectors",
    "column_hints",
    "date_valid",
    "detect_text",
    "detect_values",
    "iban_valid",
    "looks_like_names",
    "masked_shape",
    "name_lists",
    "resolve_overlaps",
    "ssn_valid",
]
