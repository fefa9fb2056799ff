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

`decoded_spans` then finds base64, hex, ``\\xNN``/``%NN`` escapes, Morse code and (when the text mentions
it) ROT13, and returns the decoded text of each span that decodes to printable text, for a second scan.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

MAX_DECODED = 8

_TAG_LO, _TAG_HI = 0xE0000, 0xE007F
# zero-width, joiners, bidi embeddings/overrides/isolates, word joiner, invisible operators, BOM, Mongolian VS
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ɡ": "g", "ո": "n", "ս": "u",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
        "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D",
        # Greek
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_CONFUSABLE = frozenset(k for k in "авеёкмнорстухіїјѕԁԛԝһɡոսАВЕКМНОРСТУХІЈЅԀαορνικτυχεΑΒΕΖΗΙΚΜΝΟΡΤΥΧ")
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


# "i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e": five or more single letters joined by one separator character
_SPACED = re.compile(r"(?<!\w)(?:[^\W\d_]([ .\-_*|/])){4,}[^\W\d_](?!\w)")
# words that mix letters with digits or $ @ ! used as letters: "1gn0r3", "pr3v10us", "$y$tem"
_LEET_WORD = re.compile(r"(?<![\w$@])(?=[\w$@!]*[^\W\d_])(?=[\w$@!]*[013457$@])[\w$@!]{3,}(?<!!)")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a", "!": "i"}
)


def _join_spaced(m: re.Match[str]) -> str:
    return m.group().replace(m.group(1), "")


def _unleet(m: re.Match[str]) -> str:
    word = m.group()
    if len(word) > 24 or word.isdigit() or sum(c.isdigit() for c in word) > len(word) // 2 + 1:
        return word  # numbers, ids, hashes, base64 and version strings stay as they are
    return word.translate(_LEET)


def _fold_word(m: re.Match[str]) -> str:
    word = m.group()
    if _LATIN.search(word) and any(c in _CONFUSABLE for c in word):
        return word.translate(_HOMOGLYPHS)
    return word


def normalize(text: str) -> Normalized:
    """Undo invisible characters, compatibility forms and mixed-script homoglyphs (see the module doc)."""
    flags: list[str] = []
    tags = "".join(chr(ord(c) - _TAG_LO) for c in _TAGS.findall(text))
    if tags:
        flags.append("tag-characters")
    stripped = _INVISIBLE.sub("", text)
    if len(stripped) != len(text) and not (tags and len(text) - len(stripped) == len(tags)):
        flags.append("invisible-characters")
    if tags:
        stripped = f"{stripped}\n{tags}"
    folded = unicodedata.normalize("NFKC", stripped)
    if folded != stripped:
        flags.append("compatibility-forms")
    folded = folded.replace("İ", "I").replace("\u0307", "").replace("ı", "i")
    homo = _MIXED_WORD.sub(_fold_word, folded) if _CONFUSABLE_RE.search(folded) else folded
    if homo != folded:
        flags.append("homoglyphs")
    joined = _SPACED.sub(_join_spaced, homo)
    if joined != homo:
        flags.append("spaced-letters")
    leet = _LEET_WORD.sub(_unleet, joined)
    if leet != joined:
        flags.append("leetspeak")
    return Normalized(text=leet, flags=tuple(flags), raw=homo)


_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[\s:]?){10,}")
_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}|(?:%[0-9A-Fa-f]{2}){6,}|(?:&#x?[0-9A-Fa-f]{2,5};){6,}")
_MORSE = re.compile(r"(?:[.-]{1,6}[ /]+){12,}[.-]{1,6}")
_MORSE_CODE = {
    code: chr(ord("a") + i)
    for i, code in enumerate(
        [".-", "-...", "-.-.", "-..", ".", "..-.", "--.", "....", "..", ".---", "-.-", ".-..", "--",
         "-.", "---", ".--.", "--.-", ".-.", "...", "-", "..-", "...-", ".--", "-..-", "-.--", "--.."]
    )
}  # fmt: skip
_MORSE_HINT = re.compile(r"(?:[.-]{1,6} ){6}")
_ROT13_HINT = re.compile(r"rot-?13|caesar|rotate.{0,20}letters", re.IGNORECASE)


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 6:
        return None
    good = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in text if c.isalpha() or c == " ")
    if good / len(text) < 0.95 or letters / len(text) < 0.6:
        return None
    return text


def _b64(span: str) -> str | None:
    if not any(c.isdigit() or c.isupper() for c in span) or (span.isalpha() and span.islower()):
        return None  # a plain lower-case word is not base64
    s = span.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return _printable(base64.b64decode(s, validate=True))
    except (binascii.Error, ValueError):
        return None


def _hex(span: str) -> str | None:
    digits = re.sub(r"[\s:]", "", span)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _printable(bytes.fromhex(digits))
    except ValueError:
        return None


def _escapes(span: str) -> str | None:
    if span.startswith("\\x"):
        return _hex(span.replace("\\x", ""))
    if span.startswith("&#"):
        import html

        return _printable(html.unescape(span).encode("utf-8", "replace"))
    return _printable(urllib.parse.unquote_to_bytes(span))


def _morse(span: str) -> str | None:
    words = [w for w in re.split(r"\s{2,}|\s*/\s*", span.strip()) if w]
    text = " ".join("".join(_MORSE_CODE.get(c, "") for c in w.split()) for w in words)
    return text if len(text.replace(" ", "")) >= 8 else None


def decoded_spans(text: str, *, max_spans: int = MAX_DECODED) -> list[tuple[str, str]]:
    """``(encoding, decoded_text)`` per span that decodes to printable text (at most ``max_spans``)."""
    out: list[tuple[str, str]] = []
    for name, pattern, decode in (
        ("base64", _B64, _b64),
        ("hex", _HEX, _hex),
        ("escapes", _ESCAPES, _escapes),
        ("morse", _MORSE, _morse),
    ):
        if name == "morse" and not _MORSE_HINT.search(text):
            continue
        for m in pattern.finditer(text):
            decoded = decode(m.group())
            if decoded is not None:
                out.append((name, decoded))
                if len(out) >= max_spans:
                    return out
    if _ROT13_HINT.search(text):
        out.append(("rot13", codecs.decode(text, "rot13")))
    return out[:max_spans]


__all__ = ["Normalized", "decoded_spans", "normalize"]
