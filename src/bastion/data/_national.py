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

from bastion.data._id_checks import IdFormat, cn_ric_valid, itin_valid, nino_valid, std_check

NATIONAL_ID = "NATIONAL_ID"
PASSPORT = "PASSPORT"
DRIVER_LICENSE = "DRIVER_LICENSE"


def keywords(words: str) -> re.Pattern[str]:
    """A case-sensitive alternation of every word in lower, Title and UPPER case.

    Scanning it is about ten times faster than a ``(?i)`` alternation, which the regex engine cannot skip
    through. Word boundaries are checked in code (:func:`_word_ok`), not with lookarounds, likewise.
    """
    variants = {v for w in words.split("|") for v in (w, w.lower(), w.capitalize(), w.upper(), w.title())}
    return re.compile("|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True)))


def _word_ok(text: str, start: int, end: int) -> bool:
    """Short keywords ("id", "no", "dl") at ``text[start:end]`` must be whole words."""
    if end - start > 4:
        return True
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return not before.isalpha() and not after.isalpha()


_ID_CONTEXT = keywords(
    "id|no|nº|n°|nr|number|numéro|numero|nummer|bsn|sofi|burgerservice|sin|social insurance|aadhaar|aadhar|"
    "uidai|steuer|idnr|identifika|cpf|cnpj|nir|insee|sécu|secu|dni|nie|nif|fiscale|cf|resident|identity|"
    "citizen|rrn|주민|身份|national|nino|ni|insurance|tax|pesel|personnummer|ssn|"
    # id-like words that JSON keys and notes use for an identifier (issue 21 F3)
    "ids|doc|docs|document|documento|dokument|ref|reference|referencia|riferimento|identifier|ident|"
    "kenmerk|número|nro|rg|kimlik|tin|ssnr|"
    # Nordic, Australian, US and Chinese words for a personal number (issue 21 F-NAT)
    "fnr|fødselsnummer|fodselsnummer|fødselsnr|personnr|pnr|samordningsnummer|cpr|hetu|henkilötunnus|"
    "tfn|tax file|itin|nid|rid|ric"
)
# Danish CPR numbers have no check digit since 2007 (a birth date and four digits): their own keywords only.
_CPR_CONTEXT = keywords("cpr|cpr-nr|cpr-nummer|personnummer|personnr")
_PASSPORT_CONTEXT = keywords(
    "passport|reisepass|pass-nr|passnr|passeport|pasaporte|passaporto|paspoort|passaporte|paszport|"
    "паспорт|护照|パスポート|여권|travel document"
)
_LICENCE_CONTEXT = keywords(
    "driver's license|drivers license|driver license|driving licence|driving license|driver's licence|"
    "dl|licence no|license no|licence number|license number|führerschein|fuhrerschein|permis de conduire|"
    "carné de conducir|carnet de conducir|licencia de conducir|patente di guida|rijbewijs|"
    "carteira de habilitação|cnh|prawo jazdy"
)


_B = ""  # the left boundary is checked in code (a leading lookbehind would stop the regex skipping ahead)
_LEFT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
_E = r"(?![\w]|[./-]\w)"  # right boundary

FORMATS: tuple[IdFormat, ...] = (
    # ---- strong: structure plus a check -------------------------------------------------------------
    IdFormat(
        "gb.nino", NATIONAL_ID, _B + r"[A-Za-z]{2}[ ]?\d\d[ ]?\d\d[ ]?\d\d[ ]?[A-Da-d]" + _E, nino_valid
    ),
    IdFormat("br.cpf", NATIONAL_ID, _B + r"\d{3}\.\d{3}\.\d{3}-\d\d" + _E, std_check("br", "cpf")),
    IdFormat("br.cnpj", NATIONAL_ID, _B + r"\d\d\.\d{3}\.\d{3}/\d{4}-\d\d" + _E, std_check("br", "cnpj")),
    IdFormat(
        "fr.nir",
        NATIONAL_ID,
        _B + r"[12][ ]?\d\d[ ]?(?:0[1-9]|1[0-2]|[2-9]\d)[ ]?(?:\d\d|2[AB])[ ]?\d{3}[ ]?\d{3}[ ]?\d\d" + _E,
        std_check("fr", "nir"),
    ),
    IdFormat("es.dni", NATIONAL_ID, _B + r"\d{8}[ -]?[A-Za-z]" + _E, std_check("es", "dni")),
    IdFormat("es.nie", NATIONAL_ID, _B + r"[XYZxyz][ -]?\d{7}[ -]?[A-Za-z]" + _E, std_check("es", "nie")),
    IdFormat(
        "it.codicefiscale",
        NATIONAL_ID,
        _B
        + r"[A-Za-z]{6}[0-9LMNPQRSTUV]{2}[A-Za-z][0-9LMNPQRSTUV]{2}[A-Za-z][0-9LMNPQRSTUV]{3}[A-Za-z]"
        + _E,
        std_check("it", "codicefiscale"),
    ),
    IdFormat("cn.ric", NATIONAL_ID, _B + r"\d{17}[\dXx]" + _E, cn_ric_valid),
    IdFormat("kr.rrn", NATIONAL_ID, _B + r"\d{6}-[1-4]\d{6}" + _E, std_check("kr", "rrn")),
    IdFormat(
        "ca.sin", NATIONAL_ID, _B + r"\d{3}[ -]\d{3}[ -]\d{3}" + _E, std_check("ca", "sin"), _ID_CONTEXT
    ),
    IdFormat(
        "in.aadhaar", NATIONAL_ID, _B + r"[2-9]\d{3}[ -]\d{4}[ -]\d{4}" + _E, std_check("in", "aadhaar")
    ),
    IdFormat("de.idnr", NATIONAL_ID, _B + r"\d\d[ ]\d{3}[ ]\d{3}[ ]\d{3}" + _E, std_check("de", "idnr")),
    IdFormat("pl.pesel", NATIONAL_ID, _B + r"\d{11}" + _E, std_check("pl", "pesel"), _ID_CONTEXT),
    # Nordic personal numbers: a birth date plus check digits (Luhn; two mod-11 digits; a mod-31 letter)
    IdFormat(
        "se.personnummer",
        NATIONAL_ID,
        _B + r"\d{6}[-+]\d{4}" + _E,
        std_check("se", "personnummer"),
    ),
    IdFormat(
        "se.personnummer",
        NATIONAL_ID,
        _B + r"(?:19|20)\d{6}-\d{4}" + _E,
        std_check("se", "personnummer"),
    ),
    IdFormat("no.fodselsnummer", NATIONAL_ID, _B + r"\d{6}[ ]\d{5}" + _E, std_check("no", "fodselsnummer")),
    IdFormat("fi.hetu", NATIONAL_ID, _B + r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Ya-y]" + _E, std_check("fi", "hetu")),
    IdFormat("us.itin", NATIONAL_ID, _B + r"9\d\d([- ])\d\d\1\d{4}" + _E, itin_valid),
    # ---- weak: bare digits, keyword needed in free text ----------------------------------------------
    IdFormat("nl.bsn", NATIONAL_ID, _B + r"\d{4}\.?\d\d\.?\d{3}" + _E, std_check("nl", "bsn"), _ID_CONTEXT),
    IdFormat("ca.sin", NATIONAL_ID, _B + r"\d{9}" + _E, std_check("ca", "sin"), _ID_CONTEXT),
    IdFormat("in.aadhaar", NATIONAL_ID, _B + r"[2-9]\d{11}" + _E, std_check("in", "aadhaar"), _ID_CONTEXT),
    IdFormat("de.idnr", NATIONAL_ID, _B + r"\d{11}" + _E, std_check("de", "idnr"), _ID_CONTEXT),
    IdFormat("br.cpf", NATIONAL_ID, _B + r"\d{11}" + _E, std_check("br", "cpf"), _ID_CONTEXT),
    IdFormat("br.cnpj", NATIONAL_ID, _B + r"\d{14}" + _E, std_check("br", "cnpj"), _ID_CONTEXT),
    IdFormat(
        "se.personnummer",
        NATIONAL_ID,
        _B + r"\d{10}(?:\d\d)?" + _E,
        std_check("se", "personnummer"),
        _ID_CONTEXT,
    ),
    IdFormat(
        "au.tfn", NATIONAL_ID, _B + r"\d{3}[ ]?\d{3}[ ]?\d{3}" + _E, std_check("au", "tfn"), _ID_CONTEXT
    ),
    IdFormat("us.itin", NATIONAL_ID, _B + r"9\d{8}" + _E, itin_valid, _ID_CONTEXT),
    # bare eleven digits pass the two mod-11 digits and the date about once in 3,000: a keyword is needed
    IdFormat(
        "no.fodselsnummer", NATIONAL_ID, _B + r"\d{11}" + _E, std_check("no", "fodselsnummer"), _ID_CONTEXT
    ),
    IdFormat("dk.cpr", NATIONAL_ID, _B + r"\d{6}-?\d{4}" + _E, std_check("dk", "cpr"), _CPR_CONTEXT),
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
        _B + r"(?:(?:[A-Z]{1,3}[ ]?)?\d{6,9}[A-Z]?|(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{8,9})" + _E,
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


def _left_ok(text: str, start: int) -> bool:
    return start == 0 or (text[start - 1] not in _LEFT and not text[start - 1].isalnum())


def id_validator(fmt: IdFormat) -> Callable[[re.Match[str]], tuple[int, int] | None]:
    def validate(m: re.Match[str]) -> tuple[int, int] | None:
        if not _left_ok(m.string, m.start()):
            return None
        if fmt.context is not None and not _has_context(m, fmt.context):
            return None
        return (m.start(), m.end()) if fmt.check(m.group()) else None

    return validate


_LAST_HITS: dict[int, tuple[str, list[tuple[int, int]]]] = {}
_RE2_MIN_CHARS = 2048  # shorter texts: Python's engine (RE2's per-call cost would not pay)


@cache
def _re2_keywords(pattern: str) -> Any:
    try:
        import re2

        return re2.compile(pattern)
    except Exception:  # RE2 missing or refusing the pattern: Python's engine
        return None


def _keyword_hits(context: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """(start, end) of the keyword matches in ``text``, cached for the last text seen per keyword set
    (formats share them).

    A keyword set is an alternation of literals: RE2 (leftmost-first, like Python's engine, so the very same
    matches) scans a long text several times faster than Python's engine, which tries the alternation at
    every letter that starts a keyword. Text RE2 cannot take (lone surrogates) goes to Python's engine."""
    cached = _LAST_HITS.get(id(context))
    if cached is not None and cached[0] is text:
        return cached[1]
    hits: list[tuple[int, int]] | None = None
    fast = (
        _re2_keywords(context.pattern)
        if len(text) >= _RE2_MIN_CHARS and not context.flags & ~re.UNICODE
        else None
    )
    if fast is not None:
        try:
            hits = [m.span() for m in fast.finditer(text)]
        except Exception:
            hits = None
    if hits is None:
        hits = [m.span() for m in context.finditer(text)]
    _LAST_HITS[id(context)] = (text, hits)
    return hits


def context_finder(fmt: IdFormat) -> Callable[[str], list[tuple[int, int, float]]]:
    """Search the keyword first, then the identifier in the few characters after it (same cell)."""
    assert fmt.context is not None
    context = fmt.context
    pattern = fmt.pattern

    def find(text: str) -> list[tuple[int, int, float]]:
        out: list[tuple[int, int, float]] = []
        pos = -1
        for kw_start, kw_end in _keyword_hits(context, text):
            if not _word_ok(text, kw_start, kw_end):
                continue
            lo = max(kw_end, pos)
            hi = min(len(text), kw_end + _CONTEXT_WINDOW)
            cut = text.find("\x00", lo, hi)
            if cut != -1:
                hi = cut
            for m in pattern.finditer(text, lo, hi):
                if _left_ok(text, m.start()) and fmt.check(m.group()):
                    out.append((m.start(), m.end(), 0.85))
                    pos = m.end()
                    break
        return out

    return find


# Bare digit runs of the weak formats, by length (BSN/SIN/TFN/ITIN; Swedish personnummer;
# PESEL/Steuer-ID/CPF/fødselsnummer; Aadhaar/personnummer; CNPJ).
_BARE_CHECKS: dict[int, tuple[Callable[[str], bool], ...]] = {
    9: (std_check("nl", "bsn"), std_check("ca", "sin"), std_check("au", "tfn"), itin_valid),
    10: (std_check("se", "personnummer"),),
    11: (
        std_check("pl", "pesel"),
        std_check("de", "idnr"),
        std_check("br", "cpf"),
        std_check("no", "fodselsnummer"),
    ),
    12: (std_check("in", "aadhaar"), std_check("se", "personnummer")),
    14: (std_check("br", "cnpj"),),
}
BARE_ID = re.compile(r"(?<![\w./-])(?:\d{9,12}|\d{14})(?![\w]|[./-]\w)")
_ID_WORDS = frozenset(
    {
        *("id", "ids", "doc", "docs", "document", "documents", "ref", "refs", "reference", "num", "number"),
        *("no", "nr", "nro", "tin", "uid", "ident", "identifier", "identity", "identification", "nummer"),
        "numero",
    }
)
_ID_PREFIXES = ("document", "ident", "reference", "fiscal", "national", "personal", "citizen", "tax")


def id_key(key: str) -> bool:
    """A JSON / key=value key that names an identifier (``doc``, ``ids``, ``ref``, ``taxRef``, ``id_no``)."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower())
    return any(w in _ID_WORDS or w.startswith(_ID_PREFIXES) for w in words if w)


def bare_national_id(value: str) -> bool:
    """``value`` is a bare digit run of a weak identifier format and passes that format's check digit.

    Chance passes are about one in ten per format: callers use it only where the context already says
    "identifier" (an id-like key) or "personal data" (a column classified pii), failing closed there."""
    v = value.strip()
    if not v.isdigit():
        return False
    return any(check(v) for check in _BARE_CHECKS.get(len(v), ()))


def id_formats_for(entity: str) -> tuple[IdFormat, ...]:
    return tuple(f for f in FORMATS if f.entity == entity)


def weak_id_column(values: Sequence[str], *, min_share: float = 0.8) -> tuple[str, str] | None:
    """(entity, format) when most non-empty values validate as one identifier format on their own.

    A random digit string passes a check digit about one time in ten, so a share of 80 % is evidence of an
    identifier column whatever its name; passports and licences are not decided this way (no check digit).
    """
    cells = [v.strip() for v in values if v.strip()]
    if len(cells) < 5 or sum(1 for v in cells[:32] if sum(c.isdigit() for c in v) >= 6) < 0.5 * min(
        len(cells), 32
    ):
        return None  # identifiers with check digits have six digits or more
    allowed = (1 - min_share) * len(cells)
    for fmt in FORMATS:
        if fmt.entity != NATIONAL_ID:
            continue
        misses = 0
        for v in cells:
            if not (fmt.pattern.fullmatch(v) and fmt.check(v)):
                misses += 1
                if misses > allowed:
                    break
        else:
            return fmt.entity, fmt.name
    return None


__all__ = [
    "BARE_ID",
    "DRIVER_LICENSE",
    "FORMATS",
    "NATIONAL_ID",
    "PASSPORT",
    "IdFormat",
    "bare_national_id",
    "cn_ric_valid",
    "context_finder",
    "id_formats_for",
    "id_key",
    "id_validator",
    "itin_valid",
    "nino_valid",
    "weak_id_column",
]
