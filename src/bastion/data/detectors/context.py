"""Column context: what a column's name suggests, value distributions that look like names, value shapes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from bastion.data import entities as E
from bastion.data._dates import DATE_PATTERN
from bastion.data._names import SHAPE_ONLY_CONFIDENCE, lexicon, name_like_value
from bastion.data.detectors.interface import Span

_DATE_RE = DATE_PATTERN.pattern


_FOLD = str.maketrans({"ø": "o", "æ": "ae", "ß": "ss", "ı": "i", "ł": "l", "đ": "d", "œ": "oe", "þ": "th"})


def norm_name(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    folded = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_")


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
            r"cpr|curp|rut|tc_?kimlik|pps|tfn|hetu|cnp|doc_?(no|nr|num|number|id)|"
            r"document_?(no|nr|num|number|id)|ausweis\w*|documento|dokument_?nr)(_|$)"
        ),
        re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./-]{4,22}[A-Za-z0-9]"),
    ),
    (
        E.DATE_OF_BIRTH,
        re.compile(
            r"(^|_)(dob|d_o_b|bday|birth\w*|born|birthday|birthdate|date_of_birth|geburtsdatum|geburtstag|"
            r"geboren|geb|gebdat\w*|geb_dat\w*|geburt|date_de_naissance|naissance|date_naiss\w*|ne_le|nee_le|"
            r"fecha_de_nacimiento|nacimiento|fecha_nac|f_nac|nacido|nacida|data_di_nascita|nascita|nato|nata|"
            r"nato_il|nata_il|geboortedatum|geboren_op|data_de_nascimento|nascimento|dt_nasc\w*|"
            r"data_urodzenia|urodzeni[ae]|urodzony|urodzona|fodselsdato|fodselsdag|fodelsedatum|fodd|"
            r"fodt|syntymaaika|syntymapaiva|dogum_tarihi|dogum|data_nasterii|nascut|datum_narozeni|narozeni|"
            r"datum_rodjenja|szuletesi_datum|szuletett|szuletes|gimtadienis|dzimsanas_datums|"
            r"ngay_sinh|tanggal_lahir|tgl_lahir|kelahiran|petsa_ng_kapanganakan|janm_tithi)(_|$)"
            # Non-Latin scripts (not folded to ASCII): Russian/Ukrainian, Greek, Chinese/Japanese, Korean,
            # Arabic, Hebrew, Hindi, Thai.
            r"|рожд|народж|γέννησης|γεννηση|出生|生年月日|誕生日|생년월일|생일|الميلاد|תאריך_לידה|לידה|जन्म|วันเกิด"
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
# Headers naming the person a row is about rather than a name field (issue 21 r5 F-LOWER: lower-case names
# under ``kunde``, ``customer``, ``email_owner`` were kept): a hint when the values are shaped like full names
# in any case (letters, apostrophes, hyphens, dots; two to six words: one word under ``member`` or ``owner``
# is a yes/no, a tier or a team), but not a sensitive header by itself (a ``customer`` column of JSON objects
# is still parsed key by key).
_NAME_WORDS = r"[^\W\d_]+(?:['\u2019.-][^\W\d_]*)*"
_ROLE_HINT = (
    E.PERSON,
    re.compile(
        r"^(customers?|clients?|kunden?|klant|cliente|contact|contact_person|ansprechpartner|owner|patient|"
        r"employee|guest|passenger|buyer|tenant|subscriber|member|applicant|insured|policyholder|addressee|"
        r"consignee|payee|payer|debtor|borrower)$|(^|_)(owner|holder|customer|kunde|client)$"
    ),
    re.compile(r"[ ]*" + _NAME_WORDS + r"(?:,?[ ]+" + _NAME_WORDS + r"){1,5}[ ]*"),
)
PERSON_HINT = next(h for h in _NAME_HINTS if h[0] == E.PERSON)
ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./-]{4,22}[A-Za-z0-9]")


def column_hints(column: str | None, *, roles: bool = True) -> list[tuple[str, re.Pattern[str]]]:
    """Entities a column's name suggests, with the value shape each one expects (``roles``: also headers
    that name the person a row is about, such as ``customer``, not a sensitive header by themselves)."""
    if not column:
        return []
    norm = norm_name(column)
    raw = re.sub(r"\s+", "_", column.strip().lower())  # headers in non-Latin scripts, which norm_name drops
    out = [
        (entity, shape)
        for entity, name_re, shape in _NAME_HINTS
        if name_re.search(norm) or (raw != norm and name_re.search(raw))
    ]
    if roles and not any(e == E.PERSON for e, _ in out) and _ROLE_HINT[1].search(norm):
        out.append((E.PERSON, _ROLE_HINT[2]))
    return out


def drop_stray_names(
    spans: list[Span], values: Sequence[str], hinted: set[str], non_empty: int
) -> list[Span]:
    """In a column of short values, a few name-looking cells and nothing else are not evidence of names
    ("San Francisco" in a city column, "Max" in a product column): the column-level tests decide instead."""
    if E.PERSON in hinted or not spans:
        return spans
    sample = [v for v in values[:256] if v]
    prose = sum(1 for v in sample if v.count(" ") >= 5) >= 0.3 * max(len(sample), 1)
    if not prose:
        # The name-shape model (names in no list, no context) is for sentences only: in a column of short
        # values ("Porto Alegre", "Mango Pomodori") the column-level tests decide.
        spans = [s for s in spans if not (s.entity == E.PERSON and s.confidence == SHAPE_ONLY_CONFIDENCE)]
        if not spans:
            return spans
    names = sum(1 for s in spans if s.entity == E.PERSON)
    if names == 0 or names >= 0.3 * max(non_empty, 1) or any(s.entity != E.PERSON for s in spans):
        return spans
    return spans if prose else []  # prose: a name in a sentence is a name


def _mostly_known(value: str) -> bool:
    """At least half the words of a one-case value are given or family names of the lists ("ana da silva"
    yes; "red wool scarf", "cape town" no)."""
    first, last = lexicon()
    words = [w.casefold().strip(".") for w in value.replace(",", " ").split()]
    return 2 * sum(1 for w in words if w in first or w in last) >= len(words)


def looks_like_names(values: Sequence[str]) -> bool:
    """Value distribution test: most non-empty values are shaped like names and many use known name words.

    Full names ("Given Family", several words) need 60 % shaped and 40 % with a known word, or 90 % shaped,
    80 % of two words or more, 15 % known and half the values distinct (names mostly outside the lists:
    product or city columns repeat their values); single words (a given-name or family-name column without
    a telling header) need 80 % known.
    """
    seen = shaped = known = multi = recased = 0
    for v in values:
        if not v:
            continue
        seen += 1
        is_shape, is_known = name_like_value(v)
        if not is_shape and " " in v.strip() and (v.islower() or v.isupper()):
            # "ana da silva", "JOHN SMITH": case says nothing, so the known words must say more (below).
            is_shape, _ = name_like_value(v.title())
            recased += is_shape
            is_known = _mostly_known(v)
        shaped += is_shape
        known += is_shape and is_known
        multi += is_shape and (" " in v.strip())
    if seen < 5:
        return False
    distinct = len({v for v in values if v})
    if recased >= 0.5 * seen:
        # Multi-word values in one case throughout: no capitals to go by, so more known name words are
        # needed than for "Given Family" (lower-case product names and places must stay out).
        return multi >= 0.8 * seen and shaped >= 0.9 * seen and known >= 0.5 * seen and distinct >= 0.5 * seen
    if multi >= 0.8 * seen and shaped >= 0.9 * seen and known >= 0.15 * seen and distinct >= 0.5 * seen:
        return True  # "Given Family" in nearly every cell, a few known words: mostly names outside the lists
    if multi >= 0.5 * seen:
        return shaped >= 0.6 * seen and known >= 0.4 * seen and distinct >= 0.3 * seen
    return shaped >= 0.8 * seen and known >= 0.8 * seen


def masked_shape(value: str) -> str:
    """Letters of every script become a/A, digits 9, runs of letters collapse ('john.doe@x.org' ->
    'a+.a+@a.a+'; 'Þórður' -> 'Aa+'; 'יעקב' -> 'a+'). Marks join their letter, whitespace (newlines too) is
    one space, ASCII punctuation stays and any other symbol is '*': a shape never carries a raw letter."""
    shape = value.translate(_SHAPE_TABLE)
    return _LETTER_RUNS.sub(r"\1+", shape)[:40]


class _ShapeTable(dict[int, str]):
    """``str.translate`` table filled on first use of each code point, from its Unicode category."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        cat = unicodedata.category(ch)
        if cat[0] == "L":
            out = "A" if cat in ("Lu", "Lt") else "a"
        elif cat[0] == "N":
            out = "9"
        elif cat[0] == "M" or cat == "Cf":
            out = ""  # combining marks and format characters (zero-width joiners) belong to their letter
        elif ch.isspace() or cat[0] in ("Z", "C"):
            out = " "
        elif code < 128:
            out = ch  # ASCII punctuation: '@', '.', '-' carry the shape
        else:
            out = "*"
        self[code] = out
        return out


_LETTER_RUNS = re.compile(r"([aA])\1+")
_SHAPE_TABLE = _ShapeTable()

__all__ = [
    "ID_SHAPE",
    "PERSON_HINT",
    "column_hints",
    "drop_stray_names",
    "looks_like_names",
    "masked_shape",
    "norm_name",
]
