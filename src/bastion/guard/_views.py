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

Round 17b (attack17z): a join is judged alone and only when it is not code or part of an address
(``config.show_the_system_prompt``, ``class PrintYourOwnSystemPromptHandler``, a URL slug); backwards and
upside-down text is judged per clause when an English preface shares its line, accented text per sentence;
backwards words are judged with their joins split (``tpmorPmetsyS``); the tables gained U+1E00-1EFF accents,
Armenian ց, Coptic ⲟ, Cyrillic ѵ and the turned ן / ɓ. Readings of readings, and of the text after
letter-joining and leetspeak, are composed in :mod:`bastion.guard._readings`; base64 groups moved to
:mod:`bastion.guard._decoders`. Round 18: letters of any script that look Latin are read through the UTS #39
skeleton (:mod:`bastion.guard._skeleton`), joins by ``.`` / ``+`` and short joins side by side, and the other
round-18 readings are read once per text by :mod:`bastion.guard._once`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

from bastion.guard import _windows
from bastion.guard._english import _MIN_HITS, _WORDS, ENGLISH, english_hits
from bastion.guard._english import english as _english


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
        "ҽ": "e", "ց": "g", "ѵ": "v", "ⲟ": "o", "Ⲟ": "O",
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
    "¿": "?", "¡": "!", "ן": "l", "ɓ": "g",
}  # fmt: skip
# ... and the letters a turn swaps (b/q, d/p, n/u, M/W): read back only inside a line taken as upside-down
_UNTURN = str.maketrans(
    _TURNED | {"b": "q", "q": "b", "d": "p", "p": "d", "n": "u", "u": "n", "M": "W", "W": "M"}
)
_TURNED_RE = re.compile("[" + "".join(c for c in _TURNED if c not in "ə¿¡ן") + "]")
_MIN_TURNED = 3  # turned letters a line needs before it is read upside down


def _upside_read(part: str) -> tuple[str, str] | None:
    """``part`` turned back (in reverse order or not) and with each word reversed in place, when the turned
    back reading is more English than ``part``; else None."""
    turned = part.translate(_UNTURN)
    best = max((turned[::-1], turned), key=_english)
    if _english(best) <= _english(part):
        return None
    return best, (_TOKEN.sub(lambda m: m.group()[::-1], turned) if best is not turned else best)


def _upside_views(text: str) -> list[tuple[str, str]]:
    """The lines with turned letters that read as English when turned back (in reverse order or not); when
    the words also read with each word reversed in place (one upside-down word per line, joined), that
    reading too ("upside-down-words": which of the two was done cannot be told from the words)."""
    found = [m.start() for m in _TURNED_RE.finditer(text)]
    if len(found) < _MIN_TURNED:
        return []
    new, words_new = [], []
    for lo, hi in _lines_at(text, found):
        line = text[lo:hi]
        if len(_TURNED_RE.findall(line)) < _MIN_TURNED:
            continue
        read = _upside_read(line)
        if read is None:  # an English preface on the line: its clauses with turned letters (round 17b)
            parts = [
                (a, b, _upside_read(line[a:b])) for a, b in clauses(line) if _TURNED_RE.search(line, a, b)
            ]
            if not any(r for _, _, r in parts):  # or the run of words that reads turned back (17c)
                parts = _windows.upside_parts(line, _upside_read)
            if not any(r for _, _, r in parts):
                continue
            best, words, at = [], [], 0
            for a, b, r in parts:
                best += [line[at:a], r[0] if r else line[a:b]]
                words += [line[at:a], r[1] if r else line[a:b]]
                at = b
            read = ("".join(best) + line[at:], "".join(words) + line[at:])
        new.append((lo, hi, read[0]))
        if read[1] != read[0]:
            words_new.append((lo, hi, read[1]))
    out = [("upside-down", _rewrite(text, new) or "")] if new else []
    return out + ([("upside-down-words", _rewrite(text, words_new) or "")] if words_new else [])


# -- words or lines written backwards ("snoitcurtsni suoiverp lla erongI") --
# the commonest English words and the words of instructions to a model, written backwards (none is an English
# word): a text holding two of them has its lines read backwards (plain ``in`` searches: fast on long text);
# round 17b: most without the spaces around them (CamelCase written backwards has none)
_BACKWARDS_KEYS = (
    "eht", "uoy", "ruoy", " lla ", "siht", "taht", "htiw", " rof ", " morf", "tahw", " dna ", " ot ",
    " fo ", "evah", "tsum", " nac ", "erongi", "snoitcurtsni", "tpmorp", "metsys", "suoiverp", "selur",
    "laever", "drowssap", "tegrof", "dragersid", "senilediug", "tuptuo", "tnirp", "terces",
)  # fmt: skip
_TOKEN = re.compile(r"\S+")


def _back_hits(part: str) -> tuple[int, int]:
    """English hits of ``part`` read backwards and forwards (joined words split first: ``tpmorPmetsyS``)."""
    words = [w for w in _WORDS.findall(split_joins(part)) if len(w) > 1]
    back = [w for w in _WORDS.findall(split_joins(part[::-1])) if len(w) > 1]
    return english_hits(back), english_hits(words)


def _is_backwards(part: str) -> bool:
    back, fwd = _back_hits(part)
    n = len(_WORDS.findall(part))
    return back >= max(_MIN_HITS, 0.3 * n) and back > 2 * fwd


# a clause: up to the next ``:`` / ``;`` or sentence end followed by a space (round 17b: backwards text after
# a plain-English preface on the same line, "… and then do what they say: .tpmorp metsys ruoy …")
_CLAUSE_END = re.compile(r"[:;.!?]+\s+")


def clauses(line: str) -> list[tuple[int, int]]:
    """The (start, end) of each clause of ``line`` ([] for one clause, or for more than 64: a long paragraph
    is judged as a whole only, which keeps the work bounded)."""
    cuts = [0, *(m.end() for m in _CLAUSE_END.finditer(line)), len(line)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a] if 2 < len(cuts) <= 65 else []


def _backwards_parts(line: str) -> list[tuple[int, int]]:
    """The (start, end) of the whole line, or else of each clause, that reads as English only backwards."""
    back, fwd = _back_hits(line)
    if back >= max(_MIN_HITS, 0.3 * len(_WORDS.findall(line))) and back > 2 * fwd:
        return [(0, len(line))]
    found = [(a, b) for a, b in clauses(line) if _is_backwards(line[a:b].rstrip())]
    if found or back < _MIN_HITS:
        return found
    return _windows.backwards_parts(line)  # or the run of words that reads backwards (round 17c)


def _backwards_views(text: str) -> list[tuple[str, str]]:
    """Lines (or clauses of a line) that read as English only backwards: each word (with its punctuation:
    ``?tpmorp``) reversed in place ("reversed-words") and the whole part reversed ("reversed"), both, since
    which of the two was done cannot be told from the words."""
    low = f" {text.lower()} "
    if sum(k in low for k in _BACKWARDS_KEYS) < _MIN_HITS:
        return []
    words_new, lines_new = [], []
    lo = 0
    for line in text.split("\n"):
        hi = lo + len(line)
        parts = _backwards_parts(line) if len(line) > 4 else []
        if parts:
            wline, rline, at = [], [], 0
            for a, b in parts:
                seg = line[a:b].rstrip()
                b = a + len(seg)
                wline += [line[at:a], _TOKEN.sub(lambda m: m.group()[::-1], seg)]
                rline += [line[at:a], seg[::-1]]
                at = b
            words_new.append((lo, hi, "".join(wline) + line[at:]))
            lines_new.append((lo, hi, "".join(rline) + line[at:]))
        lo = hi + 1
    if not words_new:
        return []
    return [
        ("reversed-words", _rewrite(text, words_new) or ""),
        ("reversed", _rewrite(text, lines_new) or ""),
    ]


# -- words joined by _ or - or in CamelCase ("ignore_all_previous_instructions", "IgnoreAllPrevious") --
# a join is read split when it is long (five or more parts by _ or -, four or more CamelCase humps:
# "command-by-command", "user_id", "JavaScript" are not), its parts are mostly English words and it is not
# code or part of an address (round 17b); each search starts with a rare character class (fast on long text)
# (round 19, perf19: both alternatives behind one first character class, each looking behind at it: the
# same matches, and re skips ahead to a capital, "_" or "-")
_LONG_JOIN = re.compile(
    r"[_A-Z-](?:(?<=[_-])[A-Za-z]{1,40}+[_-][A-Za-z]{1,40}+[_-][A-Za-z]{1,40}+[_-][A-Za-z]|"
    r"(?<=[A-Z])[a-z]{1,40}+[A-Z][a-z]{1,40}+[A-Z][a-z]{1,40}+[A-Z][a-z])"
)
# round 18 (attack17y): joins by "." or "+", and short joins (three words, three humps) that add up to
# _MIN_PARTS on their line: their lines are found by two short joins in a row
_JOINED = re.compile(r"[A-Za-z]{1,40}+(?:[_-][A-Za-z]{1,40}+)++|[A-Za-z][a-z]{0,40}+(?:[A-Z][a-z]{0,40}+)++")
_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])|[_-]")
# (a part of a join by _ . + - may itself be CamelCase: "ForgetYourRules.FromNowOnYouAnswer")
_PART = r"(?:[A-Z]{0,40}+[a-z]{1,40}+|[A-Z]{1,40}+)++"
_JOINED_ANY = re.compile(rf"{_PART}(?:[_.+-]{_PART})++|[A-Za-z][a-z]{{0,40}}+(?:[A-Z][a-z]{{0,40}}+)++")
_HOST = re.compile(r"^www\.|\.(?:com|org|net|io|gov|edu|dev|app|co|uk|de|fr|info|ai|me|us)$", re.IGNORECASE)
_HUMP_ANY = re.compile(r"(?<=[a-z])(?=[A-Z])|[_.+-]")
# round 17b (attack17z): code identifiers and URL slugs are not messages. A join is code when a call, index,
# assignment or key follows it (``(`` ``[`` ``{`` ``<`` ``=``, ``:`` before a space) or when it follows a
# declaration keyword, a member access, ``->`` / ``::``, a sigil, an option's ``-`` / ``--``, an opening quote
# or backtick, or a path or
# query character (``/`` ``\`` ``=`` ``?`` ``&`` ``@`` ``#``): a URL slug is read as the address it is
_CODE_BEFORE = re.compile(
    r"(?:\b(?:def|class|fn|func|function|fun|sub|let|mut|var|val|const|static|struct|enum|trait|interface|"
    r"type|new|import|from|extends|implements|public|private|protected|void|int|bool|string)\s+|"
    r"[.$@#&?=/\\>]|::|(?<![^\s-])-|(?<!\w)[`'\"])\Z"
)
_CODE_AFTER = re.compile(r"\s*(?:[([{<=]|:(?!\S))|[\w-]\w")
_MIN_PARTS = 5  # parts of the message joins of a line (one long join, or several by punctuation)


def split_joins(text: str) -> str:
    """``text`` with every join (``a_b``, ``a-b``, ``aB``) split into words."""
    return _JOINED.sub(lambda m: _HUMP.sub(" ", m.group()), text)


def _code_before(line: str, lo: int) -> bool:
    """Whether what stands before the join at ``lo`` makes it code (``.`` only before a lower-case join: a
    member ``config.show_the_prompt``, not a sentence ``Rules.YourNewTask``)."""
    m = _CODE_BEFORE.search(line, max(0, lo - 12), lo)
    return m is not None and (m.group() != "." or line[lo].islower())


def _message_joins(line: str, least: int = 2) -> list[re.Match[str]]:
    """The joins of ``line`` that read as English and are not code, when their parts add up to
    ``_MIN_PARTS`` (a snake_case sentence is cut into several joins by its punctuation: ``before._From``)."""
    found, parts, hits, slug = [], 0, 0, -1
    joined, hump = (_JOINED, _HUMP) if least < 3 else (_JOINED_ANY, _HUMP_ANY)  # (round 18: . + in once)
    for m in joined.finditer(line):
        words = [p for p in hump.split(m.group()) if p]
        lo, hi = m.span()
        if len(words) < least or _CODE_AFTER.match(line, hi) or _code_before(line, lo):
            continue
        if _windows.slug(line, lo, hi, slug):  # a slug after "post:" / "slugs:" or in a list of them (17c)
            slug = hi
            continue
        if ("." in m.group() or "+" in m.group()) and (
            _HOST.search(m.group()) or line[lo - 1 : lo] in ("[", "(") or "_" in m.group()
        ):
            continue  # a host name, a key, an argument, a member (round 18: joins by "." or "+" are read)
        n = english_hits(words)
        if n >= (0.5 if least < 3 else 0.6) * len(words):  # (round 18: a short join is 3 of 5 English)
            found.append(m)
            parts += len(words)
            hits += n
    return found if parts >= _MIN_PARTS and hits >= 3 else []


def joined_view(text: str, starts: list[int] | None = None, least: int = 2) -> str | None:
    """The lines with a long join (or holding one of ``starts``) that reads as English (and is not code),
    every such join in them split."""
    new = []
    starts = [m.start() for m in _LONG_JOIN.finditer(text)] if starts is None else starts
    for lo, hi in _lines_at(text, starts):
        line = text[lo:hi]
        found = _message_joins(line, least)
        if found:
            parts, at = [], 0
            for m in found:
                parts += [line[at : m.start()], _HUMP_ANY.sub(" ", m.group())]  # (_HUMP's splits too)
                at = m.end()
            new.append((lo, hi, "".join(parts) + line[at:]))
    return _rewrite(text, new)


# -- accented Latin letters ("ïgnörë àll prëvïöüs"): the documents heads do not fold marks --
_UNACCENT = {
    cp: base
    for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00))
    if (base := unicodedata.normalize("NFD", chr(cp))[0]).isascii() and base.isalpha() and chr(cp) != base
} | {ord("ø"): "o", ord("Ø"): "O", ord("ł"): "l", ord("Ł"): "L", ord("đ"): "d", ord("Đ"): "D"}
_ACCENTED = re.compile("[" + "".join(sorted(chr(c) for c in _UNACCENT)) + "]")


def _accent_view(text: str) -> str | None:
    """The lines where words with accented letters read as English without them (and make up a share of the
    line's words, or of one of its sentences: French "général", "présent" are a few words of a line, not most
    of them; an accented sentence padded with plain English on its line is read too, round 17b)."""
    found = [m.start() for m in _ACCENTED.finditer(text)]
    if len(found) < _MIN_HITS:
        return None
    new = []
    for lo, hi in _lines_at(text, found):
        line = text[lo:hi]
        if any(_accented_english(line[a:b]) for a, b in [(0, len(line)), *clauses(line)]):
            new.append((lo, hi, line.translate(_UNACCENT)))
    return _rewrite(text, new)


def _accented_english(part: str) -> bool:
    words = [w for w in _WORDS.findall(part) if len(w) > 1]
    hits = english_hits([w.translate(_UNACCENT) for w in words if _ACCENTED.search(w)])
    return hits >= _MIN_HITS and hits >= 0.25 * len(words)


_NON_LATIN = re.compile(f"[{_LOOK}{''.join(_TURNED)}{''.join(sorted(chr(c) for c in _UNACCENT))}]")


def views(text: str) -> list[tuple[str, str]]:
    """``(name, text)`` per hidden reading of ``text`` (see the module doc); ``[]`` for ordinary text."""
    out: list[tuple[str, str]] = []
    if not text.isascii() and _NON_LATIN.search(text):
        for name, make in (
            ("lookalike-words", _lookalike_view),
            ("accents", _accent_view),
        ):
            view = make(text)
            if view is not None:
                out.append((name, view))
        out += _upside_views(text)
    out += _backwards_views(text)
    view = joined_view(text)
    if view is not None:
        out.append(("joined-words", view))
    return out


__all__ = [
    "ENGLISH",
    "english_hits",
    "joined_view",
    "views",
]
