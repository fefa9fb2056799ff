"""Personal names of many cultures: a large lexicon, context, capitalisation and token shape.

Lexicon: the given names and family names of every locale of `Faker` (MIT licence; 86 locales, about 31,000
given names and 28,500 family names, Latin and non-Latin scripts; loaded from the installed package in
~0.1 s and ~10 MB), plus bastion's own short list. No model hub and no download.

A name is recognised in free text when

* a title precedes it (``Mr``, ``Dr``, ``Frau``, ``Mme``, ``Sr.``, ``Dott.`` …): the next one to four
  capitalised words, whatever they are;
* a context word frames it (``Dear …``, ``Customer … called``, ``spoke with …``, ``Regards,\\n…``,
  ``patient …``, ``… wrote``): the capitalised words there, whatever they are;
* or it is a run of two to four capitalised words (with particles such as *van der*, *de la*, *bin*,
  apostrophes and hyphens: *O'Brien*, *Jean-Luc*, *al-Rashid*) whose first word is a known given name or
  whose last word is a known family name, and none of whose words is a common non-name word.

Scripts without capitals (Han, Hangul, Kana, Arabic, Hebrew, Devanagari, Thai …) use the lexicon: a known
family name followed by a known given name (CJK, no spaces needed), or two or three space-separated words of
which one is known. Names outside the lexicon are found through titles and context only; the evaluation
corpus measures that recall separately (names that are in no list bastion ships).

Length: the person-name finder is one algorithm (lexicon, context, shape and the n-gram model) whose
parts are tuned together; the other detector families live in ``data/detectors/``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache, lru_cache
from importlib import resources

# Latin (basic, Latin-1, Extended-A/B, Extended Additional), Greek, Cyrillic, Armenian, Georgian.
_UPPER_RANGES = (
    (0x41, 0x5A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x531, 0x556), (0x10A0, 0x10CF),
    (0x1E00, 0x1EFF),
)  # fmt: skip
_UPPER = "".join(re.escape(chr(c)) for lo, hi in _UPPER_RANGES for c in range(lo, hi + 1) if chr(c).isupper())
_WORD = r"(?:[OoDdLl]['’])?[" + _UPPER + r"][^\W\d_]*(?:['’-][^\W\d_]+)*"
_PARTICLE = (
    r"(?:van|von|der|den|de|del|della|degli|di|da|das|dos|do|du|la|le|bin|binti|ibn|bint|al|el|ter|ten|"
    r"y|zu|af|av|mac|ap|verch|ní|nic|ó|ua|ben|bat|st\.?)"
)
_SUFFIX = r"(?:[ ]+(?:ұлы|қызы|uly|kyzy|qyzy|oğlu|oglu|ogly|kızı|kizi|Jr\.?|Sr\.?|II|III|IV))?"
_U = "[" + _UPPER + "]"
# The first word with its left boundary checked after its first character (a leading lookbehind would make
# the regex engine try every position). The first character is one class ahead of the two branches (O'Brien,
# or a capital), so the engine skips ahead to it: an alternation first would also make it try every position.
_FIRST_WORD = (
    r"[OoDdLl"
    + _UPPER
    + r"](?:(?<=[OoDdLl])(?<![\w@.'’-][OoDdLl])['’]"
    + _U
    + "|(?<="
    + _U
    + r")(?<![\w@.'’-]"
    + _U
    + r"))[^\W\d_]*(?:['’-][^\W\d_]+)*"
)
NAME_RUN = re.compile(
    _FIRST_WORD + r"(?:(?:[ ]+|[ ]?-[ ]?)(?:" + _PARTICLE + r"[ ]+){0,2}" + _WORD + r"){0,4}" + _SUFFIX
)
_TITLE = re.compile(
    r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Lady|Lord|Herr|Frau|Hr|Fr|Mme|Mlle|M|Monsieur|Madame|Sr|Sra|"
    r"Srta|Señor|Señora|Don|Doña|Dott|Dottssa|Sig|Sigra|Signor|Signora|Dhr|Mevr|Pan|Pani|Rev|Fr|Sheikh|"
    r"Shri|Smt|Ustaz|Hajji?|Pt)\.?[ ]+$"
)
# An element whose tag names a person: <who>…</who>, <name>…, <customer>… (XML and HTML in cells).
_PERSON_TAG = re.compile(
    r"(?i)<(?:who|name|full_?name|person|customer|client|owner|holder|contact|patient|author|sender|"
    r"recipient|signatory|employee)>$"
)
# A person noun right before a single unknown word ("Customer Suharto called", "account holder Wirathu)").
_PERSON_NOUN = re.compile(
    r"(?i)(?:customer|client|patient|account holder|holder|owner|kunde|kundin|cliente|caller|tenant|"
    r"passenger|applicant|beneficiary|recipient|payee|bệnh nhân)[ :]+$"
)
_ACTION_AFTER = re.compile(
    r"(?i)[ ]*(?:,[ ]*)?(?:called|phoned|rang|emailed|wrote|complained|asked|requested|visited|replied)\b"
)
_CLAUSE_END = re.compile(r"[ ]*(?:[).,;:!?\x00\n]|$)")
_BEFORE = re.compile(
    r"(?i)(?:dear|hi|hello|hey|hallo|bonjour|hola|ciao|olá|ola|salut|greetings|regards,?|thanks,?|"
    r"thank you,?|cheers,?|sincerely,?|best,?|customer|client|patient|employee|contact|caller|user|member|"
    r"applicant|"
    r"tenant|guest|passenger|account holder|holder|owner|bệnh nhân|"
    r"spoke (?:to|with)|talked (?:to|with)|call(?:ed)? from|email(?:ed)? from|"
    r"message from|on behalf of|attention|attn:?|cc:?|signed(?: by)?|name:?|named|nom:?|nombre:?|"
    r"kunde|kundin|cliente|signé|firmado|from|by|with|for|ask(?:ed)? for|assigned to|handled by)"
    r"[ :,]*\n?[ ]*$"
)
_AFTER = re.compile(
    r"(?i)[ ]*(?:,[ ]*)?(?:called|phoned|rang|emailed|wrote|said|asked|complained|reported|requested|visited|"
    r"signed|confirmed|mentioned|replied|explained|stated|noted|is|was|has|had|will|would|\(customer|"
    r"\(patient|<|\()"
)
_STOP = frozenset(
    """
    contact contacts attendees attendee sr sra srta el il sent ticket meeting
    the a an and or but if for from with to of in on at by as is are was were be this that these those
    it its our your their my his her we you they i he she dear hi hello thanks thank regards best monday
    tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december street st avenue ave road rd lane drive boulevard way court
    place square highway city county state republic kingdom united states america europe asia inc ltd
    llc gmbh corp co company bank group university hospital school center centre service services
    customer client patient order invoice account support team department office please note notes
    status update new old total amount price date time phone email address mobile tel fax id no number
    ref reference payment card credit debit visa mastercard amex paypal iban yes not none null true
    false ok okay mr mrs ms dr prof sir madam api key token password secret admin user login server host
    error warning info debug rue strasse straße via calle avenida rua platz weg
    """.split()  # noqa: SIM905 - a word list reads better as text
)


# Compiled once: these run per candidate word (a pattern string is looked up in re's cache on each call).
_RUN_SPLIT = re.compile(r"[ ]+|[ ]?-[ ]?(?=[" + _UPPER + r"])")
_PARTICLE_RE = re.compile(_PARTICLE)
_PARTICLE_ICASE = re.compile(_PARTICLE, re.IGNORECASE)
_VALUE_SPLIT = re.compile(r"[ ,]+")


def _script_words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,;/()]+", text) if w]


@cache
def lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names), case-folded, from every Faker locale plus bastion's own list."""
    first: set[str] = set()
    last: set[str] = set()
    text = resources.files("bastion.data").joinpath("names.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("F "):
            first.add(line[2:].strip().casefold())
        elif line.startswith("L "):
            last.add(line[2:].strip().casefold())
    try:
        import faker.providers.person as person
    except ImportError:
        return frozenset(first), frozenset(last)

    def take(value: object, into: set[str]) -> None:
        if isinstance(value, dict):
            items: list[object] = list(value.keys())
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
        else:
            return
        if items:
            for item in items:
                if isinstance(item, str) and item.strip():
                    for part in item.split():
                        into.add(part.casefold())

    for info in pkgutil.iter_modules(person.__path__):
        if not info.ispkg:
            continue
        try:
            provider = importlib.import_module(f"faker.providers.person.{info.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            take(getattr(provider, attr, ()), first)
        for attr in ("last_names", "last_names_male", "last_names_female"):
            take(getattr(provider, attr, ()), last)
    stop = _STOP
    return frozenset(first - stop), frozenset(last - stop)


def _is_name_word(word: str) -> bool:
    return word.casefold() not in _STOP


def _split_words(run: str) -> list[str]:
    return [w for w in _RUN_SPLIT.split(run) if w]


def _known(words: list[str]) -> bool:
    first, last = lexicon()
    content = [w for w in words if not _PARTICLE_RE.fullmatch(w)]
    if not content:
        return False
    head, tail = content[0].casefold(), content[-1].casefold()
    # Given-family order, or family-given order (Chen Wei, Tanaka Hiroshi).
    return head in first or tail in last or (len(content) >= 2 and head in last and tail in first)


def _context(text: str, start: int, end: int) -> tuple[bool, bool]:
    """(titled, framed) for the words at ``[start, end)``: a title before, or a context word around."""
    line_start = text.rfind("\n", 0, start) + 1
    cell_start = max(line_start, text.rfind("\x00", 0, start) + 1)
    before = text[max(cell_start, start - 40) : start]
    titled = (
        _TITLE.search(before) is not None
        or _PERSON_TAG.search(before) is not None
        or (before.endswith("<") and text.startswith(">", end))  # a chat handle: <Nalani Akana> hi
    )
    framed = titled or _BEFORE.search(before) is not None or _AFTER.match(text, end, end + 16) is not None
    return titled, framed


# The confidence of a name found by the name-word model alone (no list, no context): applied to prose only.
SHAPE_ONLY_CONFIDENCE = 0.55


@cache
def _ngram_model() -> tuple[dict[str, float], float, float]:
    """(weights, bias, threshold) of the name-word model (``name_ngrams.txt``, see
    ``scripts/train_name_model.py``)."""
    weights: dict[str, float] = {}
    bias = threshold = 0.0
    text = resources.files("bastion.data").joinpath("name_ngrams.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition("\t")
        if key == "bias":
            bias = float(value)
        elif key == "threshold":
            threshold = float(value)
        else:
            weights[key] = float(value)
    return weights, bias, threshold


@lru_cache(maxsize=1 << 16)
def name_word_score(word: str) -> float:
    """Log-odds that ``word`` is a personal-name word, from its character 1-4-grams."""
    weights, bias, _ = _ngram_model()
    w = "^" + word.casefold() + "$"
    grams = {w[i : i + n] for n in (1, 2, 3, 4) for i in range(len(w) - n + 1)}
    return bias + sum(weights.get(g, 0.0) for g in grams)


def name_shaped(words: list[str]) -> bool:
    """Two to four words, none a particle-only word, every one scoring as a name word."""
    content = [w for w in words if not _PARTICLE_RE.fullmatch(w)]
    if not 2 <= len(content) <= 4:
        return False
    _, _, threshold = _ngram_model()
    return all(len(w) >= 2 and name_word_score(w) >= threshold for w in content)


def _titled(text: str, start: int) -> bool:
    """The first element of :func:`_context`, with a fast exit: a title is always followed by a space
    (or a person tag such as ``<who>`` ends right before)."""
    if start == 0:
        return False
    if text[start - 1] == ">":
        return _PERSON_TAG.search(text, max(0, start - 20), start) is not None
    if text[start - 1] != " ":
        return False
    line_start = text.rfind("\n", 0, start) + 1
    cell_start = max(line_start, text.rfind("\x00", 0, start) + 1)
    return _TITLE.search(text[max(cell_start, start - 40) : start]) is not None


# Initials and a family name: "A. K. Subramaniam", "J. R. Ekwueme", "T. Igwe", "F. El Idrissi".
_INITIALS = re.compile(
    _U
    + r"(?<![\w.'’-]"
    + _U
    + r")\.[ ]?(?:"
    + _U
    + r"\.[ ]?){0,2}((?:"
    + _PARTICLE
    + r"[ ]+)?"
    + _WORD
    + r"(?:[ ]+"
    + _WORD
    + r")?)"
)


def _initials_spans(text: str, first: frozenset[str], last: frozenset[str]) -> list[tuple[int, int, float]]:
    """One to three initials and a name word: the word must be a known name, score as a name word, or
    stand in person context (a title, a person noun, a chat handle in angle brackets)."""
    out: list[tuple[int, int, float]] = []
    for m in _INITIALS.finditer(text):
        start, end = m.start(), m.end()
        if end < len(text) and (text[end].isalnum() or text[end] in "_-"):
            continue
        word = m.group(1).split(" ")[-1]
        folded = word.casefold()
        if folded in _STOP:
            continue
        initials = text[start : m.start(1)].strip()
        spaced = " " in initials or initials.count(".") == 1  # "A. K. X", "T. X"; not an acronym "U.S. Army"
        if (
            folded in last
            or folded in first
            or (spaced and name_word_score(word) >= 0.0)
            or _context(text, start, end)[0 if not spaced else 1]  # an acronym needs a title before it
        ):
            out.append((start, end, 0.75))
    return out


def _mononym(text: str, start: int, end: int, word: str) -> bool:
    """A single unknown word right after a person noun ("Customer Suharto called", "account holder
    Wirathu)"), followed by a verb or the end of a clause, and not scoring as a common word."""
    if start < 5 or text[start - 1] not in " :":
        return False
    cell_start = text.rfind("\x00", 0, start) + 1
    if _PERSON_NOUN.search(text, max(cell_start, start - 24), start) is None:
        return False
    if _ACTION_AFTER.match(text, end, end + 16) is not None:
        return name_word_score(word) >= -1.5  # "Customer X called": the verb says a person
    if _AFTER.match(text, end, end + 16) is None and _CLAUSE_END.match(text, end) is None:
        return False
    return name_word_score(word) >= 0.0


def person_spans(text: str) -> list[tuple[int, int, float]]:
    """(start, end, confidence) of the personal names in ``text``."""
    out: list[tuple[int, int, float]] = []
    first_names, last_names = lexicon()
    n = len(text)
    for m in NAME_RUN.finditer(text):
        start, end = m.start(), m.end()
        if end < n and (text[end].isalnum() or text[end] in "_-"):
            continue  # inside a longer token (a protected tok_…, an identifier)
        run = m.group()
        if " " not in run and "-" not in run:
            # One word (the common case): a known name with context, or any word after a title.
            folded = run.casefold()
            if folded in _STOP:
                continue
            if not (folded in first_names or folded in last_names):
                if _titled(text, start):  # an unknown word counts after a title or a person tag,
                    out.append((start, end, 0.85))
                elif _mononym(text, start, end, run):  # or after a person noun, ending a clause or a verb
                    out.append((start, end, 0.7))
                continue
            titled, framed = _context(text, start, end)
            if titled or framed:
                out.append((start, end, 0.85 if titled else 0.6))
            continue
        words = _split_words(run)
        # Trim leading and trailing non-name words ("The", "Dear", "Street" …).
        while words and not _is_name_word(words[0]):
            first_word = words.pop(0)
            start = text.index(first_word, start) + len(first_word)
            while start < end and text[start] in " -":
                start += 1
        while words and not _is_name_word(words[-1]):
            last_word = words.pop()
            end = text.rindex(last_word, start, end)
            while end > start and text[end - 1] in " -":
                end -= 1
        if not words or end <= start:
            continue
        if any(not _is_name_word(w) for w in words):
            # "John Street", "Bank Of …": mixed with common words, not a name; but after a title or a
            # person tag a particle ("El", "Il") is part of the name: <who>Fatima-Zahra El Idrissi</who>
            if (
                all(_is_name_word(w) or _PARTICLE_ICASE.fullmatch(w) for w in words)
                and _context(text, start, end)[0]
            ):
                out.append((start, end, 0.85))
            continue
        known = _known(words)
        if len(words) >= 2 and known:
            out.append((start, end, 0.85))
            continue
        if len(words) < 2 and not known:
            if _titled(text, start):
                out.append((start, end, 0.85))
            elif _mononym(text, start, end, words[0]):
                out.append((start, end, 0.7))
            continue
        titled, framed = _context(text, start, end)
        if titled or (framed and (len(words) >= 2 or known)):
            out.append((start, end, 0.85 if titled or known else 0.7))
        elif len(words) <= 4 and name_shaped(words):
            out.append((start, end, SHAPE_ONLY_CONFIDENCE))  # no list, no context: name-shaped words
    if ". " in text:
        out.extend(_initials_spans(text, first_names, last_names))
    out.extend(_caseless_spans(text))
    if ", " in text:
        out.extend(_inverted_spans(text, first_names, last_names))
    return out


_COMMA_CAP = re.compile(r",[ ]+(?=" + _U + ")")
_FAMILY_BEFORE = re.compile(
    r"(?:(?<=[^\w'’-])|^)((?:" + _PARTICLE + r"[ ]+){0,2}" + _WORD + r"(?:[ -]" + _WORD + r")?)$"
)
_GIVEN_AFTER = re.compile(_WORD + r"(?:[ -]" + _WORD + r")?(?![\w'’-])")


def _inverted_spans(
    text: str, first_names: frozenset[str], last_names: frozenset[str]
) -> list[tuple[int, int, float]]:
    """``Family, Given`` (``Hovhannisyan, Cosimo``, ``van der Berg, Anna``) in context (a context word or
    title before, a verb after, or alone at the start of a line): a known given or family name, or two
    name-shaped words (issue 21 F5)."""
    out: list[tuple[int, int, float]] = []
    _, _, threshold = _ngram_model()
    for m in _COMMA_CAP.finditer(text):
        giv = _GIVEN_AFTER.match(text, m.end())
        if giv is None:
            continue
        giv_words = _split_words(giv.group())
        if not _is_name_word(giv_words[0]):
            continue
        lo = max(0, m.start() - 48, text.rfind("\x00", 0, m.start()) + 1)
        fam = _FAMILY_BEFORE.search(text, lo, m.start())
        if fam is None:
            continue
        fam_words = [w for w in _split_words(fam.group(1)) if not _PARTICLE_RE.fullmatch(w)]
        start = fam.start(1)
        if fam_words and not _is_name_word(fam_words[0]) and len(fam_words) > 1:
            fam_words.pop(0)  # "Customer Garcia, Maria": the context word is not part of the name
            start = text.index(fam_words[0], start)
        if not fam_words or any(not _is_name_word(w) for w in fam_words + giv_words):
            continue
        line_start = max(text.rfind("\n", 0, start), text.rfind("\x00", 0, start)) + 1
        framed = not text[line_start:start].strip() or _framed(text, start, giv.end())
        if not framed:
            continue  # "Paris, France", "Berlin, Germany": places read the same way without context
        family, given = fam_words[-1], giv_words[0]
        known = given.casefold() in first_names or family.casefold() in last_names
        shaped = name_word_score(family) >= threshold and name_word_score(given) >= threshold
        if known or shaped:
            out.append((start, giv.end(), 0.8))
    return out


_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uac00-\ud7af\u3040-\u30ff]{2,5}")
_HAS_CJK = re.compile(r"[\u3040-\ud7af\u3400-\u9fff]")
_CASELESS = (
    r"\u0600-\u06ff\u0590-\u05ff\u0900-\u097f\u0e00-\u0e7f\u0980-\u09ff\u0a80-\u0aff\u0b80-\u0bff"
    r"\u0d80-\u0dff\u10a0-\u10ff\u4e00-\u9fff\u3400-\u4dbf\uac00-\ud7af\u3040-\u30ff\u200c"
    # Gurmukhi, Oriya, Telugu, Kannada, Malayalam, Lao, Myanmar, Ethiopic, Khmer
    r"\u0a00-\u0a7f\u0b00-\u0b7f\u0c00-\u0d7f\u0e80-\u0eff\u1000-\u109f\u1200-\u139f\u1780-\u17ff"
)
_CASELESS_WORDS = re.compile(r"[" + _CASELESS + r"]+(?:\.?[ ][" + _CASELESS + r"]+){0,3}")  # "ሰ. ተስፋዬ"
_CASELESS_CHAR = re.compile(r"[" + _CASELESS + r"]")


def _framed(text: str, start: int, end: int) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    cell_start = max(line_start, text.rfind("\x00", 0, start) + 1)
    before = text[max(cell_start, start - 40) : start]
    after = text[end : end + 16]
    return (
        _TITLE.search(before) is not None
        or _BEFORE.search(before) is not None
        or _AFTER.match(after) is not None
    )


def _caseless_spans(text: str) -> list[tuple[int, int, float]]:
    """Names in scripts without capitals: lexicon hits, or any short run framed by context."""
    if not _CASELESS_CHAR.search(text):
        return []
    first, last = lexicon()
    out: list[tuple[int, int, float]] = []
    for m in _CASELESS_WORDS.finditer(text):
        words = m.group().split(" ")
        spaced = len(words) > 1
        known = any(w.casefold() in first or w.casefold() in last for w in words)
        if not spaced and _HAS_CJK.match(m.group()) and len(m.group()) > 4:
            found = _cjk_name(m.group(), first, last)  # unspaced CJK text: a family name + a given name
            if found is not None:
                out.append((m.start() + found[0], m.start() + found[1], 0.75))
            continue
        if known or _framed(text, m.start(), m.end()):
            out.append((m.start(), m.end(), 0.75 if known else 0.65))
    return out


def _cjk_name(s: str, first: frozenset[str], last: frozenset[str]) -> tuple[int, int] | None:
    for i in range(len(s) - 1):
        for fam in (s[i : i + 2], s[i : i + 1]):
            if fam not in last:
                continue
            j = i + len(fam)
            for giv in (s[j : j + 2], s[j : j + 1]):
                if giv and giv in first:
                    return i, j + len(giv)
    return None


_HANGUL_NAME = re.compile(r"[\uac00-\ud7af]{2,4}")


def name_like_value(value: str) -> tuple[bool, bool]:
    """(shape, known): the value is shaped like a full name (1-5 name words, no digits); a word is known."""
    v = value.strip()
    if not v or any(c.isdigit() for c in v) or len(v) > 80 or "@" in v:
        return False, False
    words = [w for w in _VALUE_SPLIT.split(v) if w]
    if not 1 <= len(words) <= 6:
        return False, False
    first, last = lexicon()
    content = [w for w in words if not _PARTICLE_ICASE.fullmatch(w)]
    if not content:
        return False, False
    caseless = not any(c.isalpha() and (c.isupper() or c.islower()) for c in v)
    shaped = caseless or all(w[0].isupper() or w[0] in "'’" or w[:2].lower() in ("d'", "o'") for w in content)
    if not shaped or any(w.casefold() in _STOP for w in content):
        return False, False
    folded = [w.casefold().strip(".") for w in content]
    known = any(w in first or w in last for w in folded)
    if not known and caseless and len(content) == 1:
        known = any(v[:k].casefold() in last and v[k:].casefold() in first for k in (1, 2) if len(v) > k)
    return True, known


__all__ = [
    "NAME_RUN",
    "SHAPE_ONLY_CONFIDENCE",
    "lexicon",
    "name_like_value",
    "name_shaped",
    "name_word_score",
    "person_spans",
]
