"""Text normalisation before detection: what an attacker hides, the detector sees.

Steps (each recorded as a flag when it changed something):

1. Unicode *tag* characters (U+E0020–U+E007E, "ASCII smuggling") are decoded to the ASCII they encode and the
   decoded text is appended, so an instruction written in invisible tags is scanned like visible text;
2. zero-width, bidi-control and other format characters are removed (``ignore`` written as
   ``i\\u200bgnore`` becomes ``ignore``);
3. NFKC folds compatibility forms (fullwidth ``ｉｇｎｏｒｅ``, ligatures, mathematical alphanumerics);
4. homoglyphs — Cyrillic/Greek letters that look Latin — are folded to Latin *only inside words that mix
   them with Latin letters* (``іgnоrе`` → ``ignore``), so ordinary Russian or Greek text is left as it is;
6. letters spaced out with one separator (``i g n o r e``, ``i.g.n.o.r.e``) are joined, and words that mix
   letters with digits or ``$ @ !`` used as letters (``1gn0r3``, ``$y$tem``) are read as letters.
5. Turkish dotted capital İ (which ``lower()`` turns into ``i`` + a combining dot) becomes ``I`` and dotless
   ``ı`` becomes ``i`` (``İGNORE``/``ıgnore`` casefold evasion; only the detector sees this text).

Round 6 (cold review, issue 16) added: lone surrogates and non-characters are dropped (a surrogate pair
written as two escapes is joined), every format (Cf) character is invisible, small capitals and squared or
regional-indicator letters are folded to Latin, combining marks that NFKC could not compose (strike-through
overlays, "Zalgo") are dropped, inline HTML tags inside words are removed, spaced letters may use up to three
spaces or one punctuation separator (a longer or different separator is a word break), and symbol
leetspeak (``|``, ``()``, ``€``, ``/-\\``, ``§``, ``+``) is read as letters.

`decoded_spans` then finds base64 (also in whitespace-separated groups, and nested: a decoded span is searched
again), base32, hex, ``\\xNN``/``%NN``/``\\uXXXX``/``&#NN;`` escapes (in a run, or scattered: six or more
anywhere decode the whole text), Morse code, and, when the text mentions it, ROT13, any other Caesar shift
(the shift whose output has the most common English words) and reversed text; it returns the decoded text of
each span that decodes to printable text, for a second scan. Round 17 (:mod:`bastion.guard._views`): base64
in groups of one to three characters or encoded word by word (when the text mentions base64 or decoding), and
hidden readings rescanned the same way: words made only of look-alike letters, upside-down, backwards, joined
(``ignore_all_previous``, ``IgnoreAllPrevious``) or accented text, each only when it reads as English.
Round 17b: the readings are composed and read from the text after letter-joining too
(:mod:`bastion.guard._readings`), and the spans are bounded by a budget, not a count (fail closed).
Round 18: look-alikes of any script (UTS #39 skeleton), words run together, vowels dropped, pig Latin, joins
by ``.`` / ``+``, markdown table cells and hyphenated line breaks are read too (:mod:`bastion.guard._once`);
the span decoders moved to :mod:`bastion.guard._spans`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bastion.guard import _ciphers, _decoders, _fastnorm, _readings, _views
from bastion.guard._decoders import INVALID as _INVALID
from bastion.guard._decoders import valid as _valid
from bastion.guard._decoders import whole_readings
from bastion.guard._spans import _ESCAPES, _MORSE  # noqa: F401 (the span patterns tests pin)
from bastion.guard._spans import MORSE_HINT as _MORSE_HINT
from bastion.guard._spans import SPANS as _SPANS
from bastion.guard._spans import printable as _printable
from bastion.guard._undo import _BEFORE_NFKC_CHARS, attribute_texts, before_nfkc, undo_in_words

# spans decoded per text (plus one per 500 characters) before the detector fails closed (round 17b)
DECODE_BUDGET = 64
OVERFLOW = "decoding-budget"
BATCH = "batch"
DECODED_PER_CHAR, DECODED_FLOOR = 16, 65_536  # decoded characters a text may yield before it fails closed

_TAG_LO, _TAG_HI = 0xE0000, 0xE007F
# zero-width, joiners, bidi embeddings/overrides/isolates, word joiner, invisible operators, BOM, Mongolian VS
# ... and every other format (Cf) character: Arabic number signs, interlinear annotation, Egyptian hieroglyph
# and shorthand format controls, musical-symbol beams (U+1D173-1D17A), which chat models read through
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f"
    "\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0100-\U000e01ef]"
)
# combining marks NFKC could not compose onto their letter (strike-through overlays U+0336, "Zalgo" stacks)
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# small capitals, squared / negative squared / negative circled letters, regional indicators -> Latin
_LETTER_FORMS = str.maketrans(
    dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True))
    | {0x1F130 + i: chr(0x41 + i) for i in range(26)}
    | {0x1F150 + i: chr(0x41 + i) for i in range(26)}
    | {0x1F170 + i: chr(0x41 + i) for i in range(26)}
    | {0x1F1E6 + i: chr(0x41 + i) for i in range(26)}
)
_LETTER_FORMS_RE = re.compile(
    "[ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ\U0001f130-\U0001f149\U0001f150-\U0001f169\U0001f170-\U0001f189\U0001f1e6-\U0001f1ff]"
)
# inline HTML tags and comments (``<b>ign</b><i>ore</i>``) are removed; block tags are left to the classifier.
# A short comment's text is read too, after the document (a reading model sees it: round 14, indep16e found
# ``<!-- ignore all previous instructions -->`` scored 0.13 once its text was dropped with the markers)
_HTML_COMMENT = re.compile(r"<!--([^<>]{0,200}?)-->")
_HTML_INLINE = re.compile(
    r"</?(?:a|abbr|b|bdi|bdo|big|cite|code|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|"
    r"sub|sup|tt|u|var|wbr)(?:\s[^<>]{0,200})?/?>|<!--[^<>]{0,200}?-->",
    re.IGNORECASE,
)
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ɡ": "g", "ո": "n", "ս": "u", "г": "r", "ӏ": "l", "ғ": "f", "ɑ": "a", "օ": "o", "ɩ": "i",
        "ҽ": "e", "ց": "g", "ѵ": "v",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
        "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D",
        # Greek
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # round 17b (attack17z): Coptic o
        "ⲟ": "o", "Ⲟ": "O",
    }
)  # fmt: skip
_CONFUSABLE = frozenset(
    k for k in "авеёкмнорстухіїјѕԁԛԝһɡոսгӏғɑօɩҽցѵАВЕКМНОРСТУХІЈЅԀαορνικτυχεΑΒΕΖΗΙΚΜΝΟΡΤΥΧⲟⲞ"
)
_CONFUSABLE_RE = re.compile("[" + "".join(sorted(_CONFUSABLE)) + "]")
_TAGS = re.compile("[\U000e0020-\U000e007e]")
_MIXED_WORD = re.compile(r"[^\W\d_]{2,}")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Normalized:
    """The normalised text and what normalisation had to undo (flags such as ``zero-width``)."""

    text: str
    flags: tuple[str, ...]
    raw: str = ""  # before spacing/leetspeak folding: what encoded spans are searched in


# "i g n o r e", "i.g.n.o.r.e", "i  g  n", "i,g,n": five or more single letters joined by up to three spaces
# or one punctuation character (with a space either side); the commonest separator joins letters, any other is
# a word break ("i  g  n  o  r  e / a  l  l" -> "ignore all")
_SPACED = re.compile(
    r"(?<!\w)[^\W\d_](?:(?:[ \t]{1,8}|[ \t]?([.\-_*|/,;:+~·•^])\1?[ \t]?)[^\W\d_]){4,}(?!\w)"
)
# round 19 (perf19): a match holds three single letters in a row (its second to fourth), each between
# separators of one to eight characters; texts without such a run (almost all) skip the pattern above
_SEP = r"[ \t.\-_*|/,;:+~·•^]"
_SPACED_CORE = re.compile(rf"{_SEP}[^\W\d_]{_SEP}{{1,8}}[^\W\d_]{_SEP}{{1,8}}[^\W\d_]{_SEP}")
_SPACED_PARTS = re.compile(r"[^\W\d_]|[\W_]+")  # round 17 (attack17y): "_" and "^" separate, once or twice
# words that mix letters with digits or $ @ ! used as letters: "1gn0r3", "pr3v10us", "$y$tem"
_LEET_WORD = re.compile(r"(?<![\w$@])(?=[\w$@!]*[^\W\d_])(?=[\w$@!]*[013457$@])[\w$@!]{3,}(?<!!)")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a", "!": "i"}
)


def _join_spaced(m: re.Match[str]) -> str:
    parts = _SPACED_PARTS.findall(m.group())
    seps = parts[1::2]
    common = max(dict.fromkeys(seps), key=seps.count)  # a tie: the first seen (never the hash order)
    if 2 * seps.count(common) < len(seps):
        return m.group()  # "a + b * c - d / e": no one separator, not spelled-out text
    return "".join(p if i % 2 == 0 else ("" if p == common else " ") for i, p in enumerate(parts))


# symbol leetspeak: "|gn()r€", "/-\\|_|_", "|n§+ru(+|()n§"; read only in tokens of letters, digits and these
_SYMBOLS = {
    "/-\\": "a", "/\\": "a", "|_": "l", "()": "o", "|\\/|": "m", "\\/\\/": "w", "|\\|": "n", "|-|": "h",
    "\\/": "v", "€": "e", "§": "s", "+": "t", "|": "i", "(": "c",
}  # fmt: skip
_SYMBOL_ALT = "|".join(re.escape(k) for k in sorted(_SYMBOLS, key=len, reverse=True))
_SYMBOL_RE = re.compile(_SYMBOL_ALT)
# (round 19: every alternative starts with a symbol, the letter before it looked behind: re skips ahead)
_SYMBOL_HINT = re.compile(r"[€§]|/-?\\|\\/|\|_|\((?<=[A-Za-z]\()\)[A-Za-z]|[|+(](?<=[A-Za-z][|+(])[A-Za-z]")
# round 17 (perf17): only tokens holding a symbol's first character; _unsymbol returns any other unchanged
_SYMBOL_WORD = re.compile(
    rf"(?<!\S)(?=[A-Za-z0-9$@!]*[/\\|(€§+])(?:[A-Za-z0-9$@!]|{_SYMBOL_ALT})+(?=[.,;:?\"')\]]*(?:\s|$))"
)


def _unsymbol(m: re.Match[str]) -> str:
    """A token read as symbol leetspeak when two or more symbols stand for letters in it (``|gn()r€``), or one
    symbol other than ``(`` between two letters (``y()ur``); code (``f(x``, ``foo()``, ``C++``) stays."""
    word = m.group()
    found = _SYMBOL_RE.findall(word)
    out = _SYMBOL_RE.sub(lambda s: _SYMBOLS[s.group()], word).translate(_LEET)
    if not out.isalpha() or len(out) < 3 or word.endswith("++") or word[0] in "(+":
        return word
    if len(found) >= 2:
        return out
    inner = re.search(rf"[A-Za-z](?:{_SYMBOL_ALT})[A-Za-z]", word)
    return out if inner and found[0] != "(" else word


# round 25 (cold review attack25r): names of encodings, hashes and formats whose digits are not letters; read
# as leetspeak they became "base6a", "sha2s6", "mds", so no rule that names them could match
_TECH_WORDS = frozenset(
    {
        "base16",
        "base32",
        "base36",
        "base58",
        "base62",
        "base64",
        "base85",
        "base91",
        "ascii85",
        "rot13",
        "rot47",
        "rot5",
        "rot18",
        "md4",
        "md5",
        "sha1",
        "sha224",
        "sha256",
        "sha384",
        "sha512",
        "sha3",
        "crc32",
        "blake2",
        "blake3",
        "argon2",
        "aes128",
        "aes192",
        "aes256",
        "3des",
        "utf7",
        "utf8",
        "utf16",
        "utf32",
        "h263",
        "h264",
        "h265",
        "x264",
        "x265",
        "mp3",
        "mp4",
        "m4a",
        "ipv4",
        "ipv6",
        "oauth2",
        "http2",
        "http3",
        "s3",
        "ec2",
        "i18n",
        "l10n",
        "k8s",
    }
)


def _unleet(word: str) -> str:
    if len(word) > 24 or word.isdigit() or sum(c.isdigit() for c in word) > len(word) // 2 + 1:
        return word  # numbers, ids, hashes, base64 and version strings stay as they are
    if word.lower() in _TECH_WORDS:
        return word
    return word.translate(_LEET)


def _fold_word(m: re.Match[str]) -> str:
    word = m.group()
    if _LATIN.search(word) and any(c in _CONFUSABLE for c in word):
        return word.translate(_HOMOGLYPHS)
    return word


def normalize(text: str) -> Normalized:
    """Undo invisible characters, compatibility forms and mixed-script homoglyphs (see the module doc)."""
    flags: list[str] = []
    # round 19 (perf19): a step that looks for one class of characters runs only when the text's distinct
    # characters hold one (``seen``; "" for ASCII text, outside every such class; after a step that may add
    # characters, read again)
    seen = _fastnorm.chars(text)
    if seen and _INVALID.search(seen):
        text = _valid(text)
        flags.append("invalid-code-points")
        seen = _fastnorm.chars(text)
    tags = "".join(chr(ord(c) - _TAG_LO) for c in _TAGS.findall(text)) if _TAGS.search(seen) else ""
    if tags:
        flags.append("tag-characters")
    stripped = _INVISIBLE.sub("", text) if _INVISIBLE.search(seen) else text
    if "&" in stripped or _BEFORE_NFKC_CHARS.search(seen):
        before, stripped = stripped, before_nfkc(stripped, flags)
        if stripped != before:  # (fuzz19: whatever it adds, every later gate reads; today it adds ASCII only)
            seen = _fastnorm.chars(stripped)
    if len(stripped) != len(text) and not (tags and len(text) - len(stripped) == len(tags)):
        flags.append("invisible-characters")
    if tags:
        stripped = f"{stripped}\n{tags}"
    folded = unicodedata.normalize("NFKC", stripped) if seen else stripped
    if folded != stripped:
        flags.append("compatibility-forms")
        seen = _fastnorm.chars(folded)
    if seen and _LETTER_FORMS_RE.search(seen):
        folded = folded.translate(_LETTER_FORMS).replace("ǫ", "q")
        if "letter-forms" not in flags:
            flags.append("letter-forms")
    if seen and ("İ" in seen or "\u0307" in seen or "ı" in seen):
        folded = folded.replace("İ", "I").replace("\u0307", "").replace("ı", "i")
    unmarked = _MARKS.sub("", folded) if seen and _MARKS.search(seen) else folded
    if unmarked != folded:
        flags.append("combining-marks")
        folded = unmarked
    if "<" in folded:
        untagged = _HTML_INLINE.sub("", folded)
        if untagged != folded:
            flags.append("html-tags")
            notes = [c.strip() for c in _HTML_COMMENT.findall(folded) if c.strip()]
            if notes:  # the markers go (they split words: ``ign<!-- -->ore``), the words stay readable
                flags.append("html-comments")
            attrs = attribute_texts(folded)
            if attrs:
                flags.append("html-attributes")
            if notes or attrs:
                untagged = untagged + "\n" + "\n".join(notes + attrs)
            folded = untagged
    marked, folded = folded, undo_in_words(folded, flags)
    # (not ``seen``: undo_in_words may add characters; an ASCII text holds no look-alike)
    homo = (
        _MIXED_WORD.sub(_fold_word, folded)
        if not folded.isascii() and _CONFUSABLE_RE.search(folded)
        else folded
    )
    if homo != folded:
        flags.append("homoglyphs")
    joined = _SPACED.sub(_join_spaced, homo) if _SPACED_CORE.search(homo) else homo
    if joined != homo:
        flags.append("spaced-letters")
        if _CONFUSABLE_RE.search(joined):  # look-alikes spaced apart are one mixed word only once joined
            joined = _MIXED_WORD.sub(_fold_word, joined)
    leet = _fastnorm.leet_words(joined, _unleet)  # = _LEET_WORD.sub(_unleet(m.group()), joined)
    if _SYMBOL_HINT.search(leet):
        leet = _SYMBOL_WORD.sub(_unsymbol, leet)
    if leet != joined:
        flags.append("leetspeak")
    if marked != folded and _ciphers.keeps_markup(marked):  # Ascii85 holds ` < > * _ (round 17c)
        homo = f"{homo}\n{marked}"
    return Normalized(text=leet, flags=tuple(flags), raw=homo)


class _Spent(Exception):
    """The decoding budget of a text is spent."""


def decoded_spans(text: str, *, also: str = "", depth: int = 3, hints: str = "") -> list[tuple[str, str]]:
    """``(encoding, decoded_text)`` per span that decodes to printable text and per hidden reading of ``text``
    (and of ``also``, the same text after letter-joining and leetspeak folding); a decoded span is searched
    again (``depth`` levels: base64 of base64), its encoding named ``outer>inner``.

    Round 17b (attack17z): every span is kept (eight decoy spans in front no longer push the payload out).
    The first :data:`DECODE_BUDGET` spans (plus one per 500 characters) come one by one; the spans beyond
    them come joined as one ``(BATCH, text)`` entry, scored once (round 17b's second review: failing closed
    on the count flagged a Kubernetes Secret, a MIME attachment and a JSON export of base64 fields). Decoded
    text beyond 16 characters per character of input ends the list with ``(OVERFLOW, "")``, which the
    detector reads as obfuscation (fail closed) rather than leaving the rest unread. The work stays linear in
    the text's length. ``hints``: text around ``text`` whose mentions of an encoding count as the text's own
    (round 24: an application template's own words, "Decode the note: {note}", when only the slot is
    scanned)."""
    left = [DECODE_BUDGET + len(text) // 500, DECODED_PER_CHAR * len(text) + DECODED_FLOOR]
    out: list[tuple[str, str]] = []
    batch: list[str] = []
    try:
        _decode(text, also or text, depth, "", out, set(), left, batch, hints)
    except _Spent:
        out.append((OVERFLOW, ""))
    else:
        if batch:
            out.append((BATCH, "\n".join(batch)))
    return out


def _decode(
    text: str, also: str, depth: int, prefix: str, out: list[tuple[str, str]], seen: set[tuple[str, str]],
    left: list[int], batch: list[str], hints: str = "",
) -> None:  # fmt: skip
    def add(name: str, decoded: str) -> bool:
        if (name, decoded) in seen:
            return False
        seen.add((name, decoded))
        left[0] -= 1
        left[1] -= len(decoded)
        if left[1] < 0:
            raise _Spent
        if left[0] < 0:
            batch.append(decoded)
        else:
            out.append((prefix + name, decoded))
        return True

    for name, view in _readings.readings(text, also):
        add(name, view)
    hint = f"{text}\n{hints}" if hints else text  # where the mentions of an encoding are looked for
    hinted = _decoders.b64_hinted(hint)
    for name, pattern, decode in _SPANS:
        if name == "morse" and not _MORSE_HINT.search(text):
            continue
        if pattern is _decoders.WORD_GROUPS and not hinted:
            continue
        at = [(0, len(text))]
        if pattern is _decoders.SHORT_GROUPS and not hinted and len(text) > _decoders.UNHINTED_MAX:
            at = _decoders.dense_regions(text)  # round 17c: where short tokens stand in a run
        for m in (m for lo, hi in at for m in pattern.finditer(text, lo, hi)):
            decoded = decode(m.group())
            if decoded is not None and add(name, decoded) and depth > 1:
                _decode(decoded, decoded, depth - 1, f"{prefix}{name}>", out, seen, left, batch, hints)
    low = text.lower()  # round 17c: entities without ";", CSS escapes, U+ lists, quoted-printable, …
    hint_low = hint.lower() if hints else None
    for name, got in _ciphers.spans(text, low, hint_low):
        text_of = _printable(got.encode("utf-8", "replace"))
        if text_of is not None and add(name, text_of) and depth > 1:
            _decode(text_of, text_of, depth - 1, f"{prefix}{name}>", out, seen, left, batch, hints)
    readings = whole_readings(text, hint if hints else None) + _ciphers.atbash(text, low, hint_low)
    for name, decoded in readings:
        if add(name, decoded) and depth > 1 and name in ("reversed", "rot13"):
            split = _views.joined_view(decoded)
            if split is not None:
                add(f"{name}>joined-words", split)


__all__ = ["BATCH", "DECODE_BUDGET", "OVERFLOW", "Normalized", "decoded_spans", "normalize"]
