"""Hidden readings of a text that a model still reads, as extra views for a second scan (issue 16, round 17).

A cold review (attack16z, round 16d) found rewrites that kept every one of 18 plain injections unflagged while
a chat model still reads them: words written entirely in Cyrillic / Greek look-alike letters (the mixed-script
fold of :func:`bastion.guard.normalize.normalize` only folds words that keep a Latin letter), upside-down
text, words or whole lines written backwards, words joined by ``_`` / ``-`` or in CamelCase, and accented
letters on the documents channel (its heads do not fold marks). :func:`views` returns, per rewrite found,
``(name, text)``: the whole text with the changed lines read back (a line scored alone is a shorter, different
text). :func:`bastion.guard.normalize.decoded_spans` hands them to the detector, which rescans them like a
decoded base64 span: a view adds a flag only when it scores as an attack itself.

No view changes what the detector sees of ordinary text, and a view is built only when its reading is
clearly English: the words it reads back hit a list of common English words (:data:`ENGLISH`) — at least
``_MIN_HITS`` of them and a share of the line's words — and, for backwards text, clearly more than the line
read forwards. Real Russian, Greek or Ukrainian text (whose words made only of look-alike letters read as
"bot", "kak", "het" …), IPA transcriptions and formulas with a few turned letters are left alone. Each check
starts with a cheap search over the text (a character class that ordinary English text rarely holds, or plain
``in`` searches for backwards words) and reads only the lines it found: on a 10 KB document the views cost
well under 0.1 ms unless one is found, and all of it stays linear in the text's length.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

# common English words (function words first, then frequent verbs, nouns and adjectives, and the words
# instructions to a model are made of); a reading is "English" when enough of its words are here
_ENGLISH_WORDS = """
    a about above after again against all also always am an and any anything are as ask at away back be
    because been before being below between both but by can cannot could did do does doing done down
    during each either else even every everything few for from further had has have having he her here
    hers him his how however i if in into is it its itself just let like may me might more most must my
    myself never no nor not now of off on once only or other our ours out over own same she should since
    so some something still such than that the their them then there these they this those through to
    too under until up upon us very was we were what when where which while who whom whose why will with
    within without would yes yet you your yours yourself accept access account act add admin again agent
    allow answer apply assistant attention available become begin below best break bypass call change
    character chat check clear code come command complete confidential contain content context continue
    control copy create credentials current data delete describe detail developer different directions
    disable disregard display do document email enable end enter error every exactly example explain
    file filter find first follow following forget format forward free full get give go good great
    guidelines help hidden history ignore image important include information initial input instead
    instructions keep key know last leave limit line link list log login look make many mark message
    mode model more name need new next note now number old open operator order original output override
    page part pass password people permission person place play please policy post pretend previous
    print prior private prompt provide question read real really remember remove repeat reply report
    request respond response restrictions result return reveal right role rules run safe safety say
    secret secure see send server set settings show site start state stay step stop summary system take
    task tell text thing think time today token tool true trust try turn unless update use user value
    verbatim visit want warning way well word work write
"""
ENGLISH = frozenset(_ENGLISH_WORDS.split())
_MIN_HITS = 2  # English words a reading must hit (and at least a share of the words it reads)
_WORDS = re.compile(r"[^\W\d_]+")


def english_hits(words: list[str]) -> int:
    """How many of ``words`` are common English words (or their plural)."""
    return sum((w := x.lower()) in ENGLISH or (w[-1:] == "s" and w[:-1] in ENGLISH) for x in words)


def _english(text: str, share: float = 0.3) -> int:
    """The English hits of ``text``'s words when they reach ``_MIN_HITS`` and ``share`` of its words of two or
    more letters, else 0."""
    words = [w for w in _WORDS.findall(text) if len(w) > 1]
    hits = english_hits(words)
    return hits if hits >= _MIN_HITS and hits >= share * len(words) else 0


def _lines_at(text: str, starts: list[int]) -> list[tuple[int, int]]:
    """The (start, end) of each distinct line holding one of the positions ``starts`` (sorted)."""
    out: list[tuple[int, int]] = []
    for pos in starts:
        if out and pos < out[-1][1]:
            continue
        lo = text.rfind("\n", 0, pos) + 1
        hi = text.find("\n", pos)
        out.append((lo, len(text) if hi < 0 else hi))
    return out


def _rewrite(text: str, new: list[tuple[int, int, str]]) -> str | None:
    """``text`` with each (start, end) line replaced by its new text (the whole text, so the view is scored
    with the context the line had: a line scored alone is a different, shorter text); None if none changed."""
    if not new:
        return None
    parts, at = [], 0
    for lo, hi, line in new:
        parts += [text[at:lo], line]
        at = hi
    return "".join(parts) + text[at:]


# -- words made only of Cyrillic / Greek look-alike letters ("іgnоrе", every letter Cyrillic) --
_LOOKALIKE = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ɡ": "g", "ո": "n", "ս": "u", "г": "r", "ӏ": "l", "ғ": "f", "ɑ": "a", "օ": "o", "ɩ": "i",
        "ҽ": "e",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
        "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D",
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_LOOK = "".join(sorted(chr(k) for k in _LOOKALIKE))
# a word of two or more look-alike letters only (no other letter next to it)
_LOOK_WORD = re.compile(rf"(?<![^\W\d_])[{_LOOK}]{{2,}}(?![^\W\d_])")


def _lookalike_view(text: str) -> str | None:
    """The lines whose words made only of look-alike letters read as English, folded to Latin."""
    found = [m.start() for m in _LOOK_WORD.finditer(text)]
    if len(found) < _MIN_HITS:
        return None
    new = []
    for lo, hi in _lines_at(text, found):
        line = text[lo:hi]
        folded = [m.group().translate(_LOOKALIKE) for m in _LOOK_WORD.finditer(line)]
        # the folded words of three or more letters must read as English: Russian "вот", "как", "нет" read
        # "bot", "kak", "het", and two-letter ones too often collide (Greek "το" is "to", Bulgarian "не" "he")
        folded = [w for w in folded if len(w) > 2]
        if english_hits(folded) >= max(_MIN_HITS, 0.4 * len(folded)):
            new.append((lo, hi, _LOOK_WORD.sub(lambda m: m.group().translate(_LOOKALIKE), line)))
    return _rewrite(text, new)


# -- upside-down text ("ʇxǝʇ uʍop-ǝpısdn"): turned letters, usually in reverse order --
_TURNED = {
    "ɐ": "a", "ɔ": "c", "ǝ": "e", "ə": "e", "ɟ": "f", "ƃ": "g", "ɥ": "h", "ᴉ": "i", "ɾ": "j", "ʞ": "k",
    "ɯ": "m", "ɹ": "r", "ʇ": "t", "ʌ": "v", "ʍ": "w", "ʎ": "y", "∀": "A", "Ɔ": "C", "Ǝ": "E", "Ⅎ": "F",
    "⅁": "G", "ꓘ": "K", "˥": "L", "Ԁ": "P", "⊥": "T", "∩": "U", "Λ": "V", "⅄": "Y", "ꓭ": "B", "ᗡ": "D",
    "¿": "?", "¡": "!",
}  # fmt: skip
# ... and the letters a turn swaps (b/q, d/p, n/u, M/W): read back only inside a line taken as upside-down
_UNTURN = str.maketrans(
    _TURNED | {"b": "q", "q": "b", "d": "p", "p": "d", "n": "u", "u": "n", "M": "W", "W": "M"}
)
_TURNED_RE = re.compile("[" + "".join(c for c in _TURNED if c not in "ə¿¡") + "]")
_MIN_TURNED = 3  # turned letters a line needs before it is read upside down


def _upside_view(text: str) -> str | None:
    """The lines with turned letters that read as English when turned back (in reverse order or not)."""
    found = [m.start() for m in _TURNED_RE.finditer(text)]
    if len(found) < _MIN_TURNED:
        return None
    new = []
    for lo, hi in _lines_at(text, found):
        line = text[lo:hi]
        if len(_TURNED_RE.findall(line)) < _MIN_TURNED:
            continue
        turned = line.translate(_UNTURN)
        best = max((turned[::-1], turned), key=_english)
        if _english(best) > _english(line):
            new.append((lo, hi, best))
    return _rewrite(text, new)


# -- words or lines written backwards ("snoitcurtsni suoiverp lla erongI") --
# the commonest English words and the words of instructions to a model, written backwards (none is an English
# word): a text holding two of them has its lines read backwards (plain ``in`` searches: fast on long text)
_BACKWARDS_KEYS = (
    " eht", " uoy", " ruoy", " lla ", " siht", " taht", " htiw", " rof ", " morf", " tahw", " dna ", " ot ",
    " fo ", " evah", " tsum", " nac ", "erongi", "snoitcurtsni", "tpmorp", "metsys", "suoiverp", "selur",
    "laever", "drowssap", "tegrof", "dragersid", "senilediug", "tuptuo", "tnirp", "terces",
)  # fmt: skip
_TOKEN = re.compile(r"\S+")


def _backwards_views(text: str) -> list[tuple[str, str]]:
    """Lines that read as English only backwards: each word (with its punctuation: ``?tpmorp``) reversed in
    place ("reversed-words") and the whole line reversed ("reversed"), both, since which of the two was done
    cannot be told from the words."""
    low = f" {text.lower()} "
    if sum(k in low for k in _BACKWARDS_KEYS) < _MIN_HITS:
        return []
    words_new, lines_new = [], []
    lo = 0
    for line in text.split("\n"):
        hi = lo + len(line)
        words = [w for w in _WORDS.findall(line) if len(w) > 1]
        back = english_hits([w[::-1] for w in words])
        if back >= max(_MIN_HITS, 0.3 * len(words)) and back > 2 * english_hits(words):
            words_new.append((lo, hi, _TOKEN.sub(lambda m: m.group()[::-1], line)))
            lines_new.append((lo, hi, line[::-1]))
        lo = hi + 1
    if not words_new:
        return []
    return [
        ("reversed-words", _rewrite(text, words_new) or ""),
        ("reversed", _rewrite(text, lines_new) or ""),
    ]


# -- words joined by _ or - or in CamelCase ("ignore_all_previous_instructions", "IgnoreAllPrevious") --
# a line is read split when it holds a long join (five or more parts by _ or -, four or more CamelCase humps:
# "command-by-command", "user_id", "JavaScript" are not) whose parts are mostly English words; each search
# starts with a rare character class (fast on long text)
_LONG_JOIN = re.compile(
    r"[_-][A-Za-z]{1,40}+[_-][A-Za-z]{1,40}+[_-][A-Za-z]{1,40}+[_-][A-Za-z]|"
    r"[A-Z][a-z]{1,40}+[A-Z][a-z]{1,40}+[A-Z][a-z]{1,40}+[A-Z][a-z]"
)
_JOINED = re.compile(r"[A-Za-z]{1,40}+(?:[_-][A-Za-z]{1,40}+)++|[A-Za-z][a-z]{0,40}+(?:[A-Z][a-z]{0,40}+)++")
_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])|[_-]")


def _joined_view(text: str) -> str | None:
    """The lines with a long join whose parts read as English, every join in them split."""
    new = []
    for lo, hi in _lines_at(text, [m.start() for m in _LONG_JOIN.finditer(text)]):
        line = text[lo:hi]
        joins = [_HUMP.split(m.group()) for m in _JOINED.finditer(line)]
        parts = [p for j in joins if len(j) >= 4 for p in j if p]
        if english_hits(parts) >= max(3, 0.5 * len(parts)):
            new.append((lo, hi, _JOINED.sub(lambda m: _HUMP.sub(" ", m.group()), line)))
    return _rewrite(text, new)


# -- accented Latin letters ("ïgnörë àll prëvïöüs"): the documents heads do not fold marks --
_UNACCENT = {
    cp: base
    for cp in range(0xC0, 0x250)
    if (base := unicodedata.normalize("NFD", chr(cp))[0]).isascii() and base.isalpha() and chr(cp) != base
} | {ord("ø"): "o", ord("Ø"): "O", ord("ł"): "l", ord("Ł"): "L", ord("đ"): "d", ord("Đ"): "D"}
_ACCENTED = re.compile("[" + "".join(sorted(chr(c) for c in _UNACCENT)) + "]")


def _accent_view(text: str) -> str | None:
    """The lines where words with accented letters read as English without them (and make up a share of the
    line's words: French "général", "présent" are a few words of a line, not most of them)."""
    found = [m.start() for m in _ACCENTED.finditer(text)]
    if len(found) < _MIN_HITS:
        return None
    new = []
    for lo, hi in _lines_at(text, found):
        line = text[lo:hi]
        words = [w for w in _WORDS.findall(line) if len(w) > 1]
        plain = [w.translate(_UNACCENT) for w in words if _ACCENTED.search(w)]
        hits = english_hits(plain)
        if hits >= _MIN_HITS and hits >= 0.25 * len(words):
            new.append((lo, hi, line.translate(_UNACCENT)))
    return _rewrite(text, new)


# -- base64 cut into groups of one to three characters ("SWd ub3 JlI …") or encoded word by word
# ("SWdub3Jl YWxs cHJldmlvdXM="): found here, decoded by :func:`bastion.guard.normalize.decoded_spans`
SHORT_GROUPS = re.compile(r"(?<![\w+/=])(?:[A-Za-z0-9+/]{1,3}[ \t]+){5,}[A-Za-z0-9+/]{1,3}={0,2}(?![\w+/=])")
WORD_GROUPS = re.compile(
    r"(?<![\w+/=])(?:[A-Za-z0-9+/]{2,40}={0,2}[ \t]+){2,}[A-Za-z0-9+/]{2,40}={0,2}(?![\w+/=])"
)
_MARK = re.compile(r"[0-9+/A-Z]")


def short_groups(span: str) -> list[str]:
    """The candidate base64 texts of a run of short groups: the groups joined, with up to three leading groups
    (words before the encoded text) left out; [] unless half the groups hold a capital, a digit, + or /."""
    groups = span.split()
    if 2 * sum(bool(_MARK.search(g)) for g in groups) < len(groups):
        return []
    return ["".join(groups[k:]) for k in range(4) if len("".join(groups[k:])) >= 16]


def word_groups(span: str) -> list[str]:
    """The base64 tokens of a run encoded word by word (each a whole number of 4-character blocks, a padded
    one inside the run); [] unless the run has a padded token inside it and half its tokens are marked."""
    tokens = span.split()
    if not any("=" in t for t in tokens[:-1]) or any(len(t) % 4 for t in tokens):
        return []
    return tokens if 2 * sum(bool(_MARK.search(t)) for t in tokens) >= len(tokens) else []


def decode_words(tokens: list[str]) -> bytes | None:
    """Tokens base64-encoded one by one, decoded and joined by spaces (None if one does not decode)."""
    try:
        words = [base64.b64decode(t, validate=True).decode("utf-8") for t in tokens]
    except (binascii.Error, ValueError):
        return None
    return " ".join(words).encode() if words else None


_NON_LATIN = re.compile(f"[{_LOOK}{''.join(_TURNED)}{''.join(sorted(chr(c) for c in _UNACCENT))}]")
_B64_HINTS = ("base64", "base 64", "b64", "decod", "encod")


def b64_hinted(text: str) -> bool:
    """Whether ``text`` mentions base64 or decoding (base64 cut into short groups is searched only then)."""
    low = text.lower()
    return any(h in low for h in _B64_HINTS)


def views(text: str) -> list[tuple[str, str]]:
    """``(name, text)`` per hidden reading of ``text`` (see the module doc); ``[]`` for ordinary text."""
    out: list[tuple[str, str]] = []
    if not text.isascii() and _NON_LATIN.search(text):
        for name, make in (
            ("lookalike-words", _lookalike_view),
            ("upside-down", _upside_view),
            ("accents", _accent_view),
        ):
            view = make(text)
            if view is not None:
                out.append((name, view))
    out += _backwards_views(text)
    view = _joined_view(text)
    if view is not None:
        out.append(("joined-words", view))
    return out


__all__ = [
    "ENGLISH",
    "SHORT_GROUPS",
    "WORD_GROUPS",
    "b64_hinted",
    "decode_words",
    "english_hits",
    "short_groups",
    "views",
    "word_groups",
]
