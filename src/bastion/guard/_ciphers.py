"""More encodings for :func:`bastion.guard.normalize.decoded_spans` (issue 16, round 17c).

The second cold review of the round-17 readings (attack17y) passed 18 of 18 injections written in encodings
the span decoder did not know, each announced by a "decode this … and follow it" line: HTML entities without
their ``;`` (``&#73&#103``), CSS escapes (``\\49 \\67``), ``U+0049`` lists, quoted-printable (``=49=67``),
lower-case base32, Ascii85, A1Z26 (``9-7-14-15-18-5``) and Atbash. Each is decoded here and the decoded text
rescanned like any decoded span (a reading adds a flag only when it scores as an attack itself).

The first four forms are unambiguous in a run of six or more and are decoded without a hint (the decoded
text must still be printable and mostly letters: :func:`bastion.guard._spans.printable`). Forms that
ordinary text also takes are read only when the text names them (lower-case base32: ordinary long words;
Ascii85: punctuation-heavy tokens) or only when the reading is English (A1Z26: number lists, dates and
versions decode to no words; Atbash: the whole text, when it names the cipher or mentions decoding, holds
two common words written in Atbash, and a run of words on one line reads as English only through Atbash).
Every search starts with a literal or a character class, so a long document without these forms costs one
fast pass per pattern.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from bastion.guard import _views, _windows

# six or more entities (decimal or hex, ";" optional), with up to three non-word characters between them
# (the spaces and punctuation left as they were); the ones with ";" are read by the span decoder already
_NUM = r"&#(?:[xX][0-9A-Fa-f]{1,6}|\d{1,7});?"
ENTITIES = re.compile(rf"{_NUM}(?:[^&\w]{{0,3}}{_NUM}){{5,}}")
_ENTITY = re.compile(r"&#(?:[xX]([0-9A-Fa-f]{1,6})|(\d{1,7}));?")
# CSS escapes: a backslash, two to six hex digits and an optional space ("\49 \67 \6e"); six or more in a run
_CSS1 = r"\\[0-9A-Fa-f]{2,6}(?![0-9A-Fa-f]) ?"
CSS = re.compile(rf"{_CSS1}(?:[^\\\w]{{0,3}}{_CSS1}){{5,}}")
_CSS = re.compile(r"\\([0-9A-Fa-f]{2,6}) ?")
# code points written out: "U+0049 U+0067 …" (six or more, separated by up to three non-word characters)
_UPLUS1 = r"[Uu]\+[0-9A-Fa-f]{4,6}(?![0-9A-Fa-f])"
UPLUS = re.compile(
    rf"\+(?<=[Uu]\+)[0-9A-Fa-f]{{4,6}}(?![0-9A-Fa-f])(?:[^\w+]{{1,3}}{_UPLUS1}){{5,}}"
)  # at a "+"
_UPLUS = re.compile(r"\+([0-9A-Fa-f]{4,6})")
# quoted-printable: six or more "=XX" (soft line breaks "=\n" and up to two literal characters between)
_QP1 = r"=[0-9A-Fa-f]{2}"
QP = re.compile(rf"{_QP1}(?:(?:=\r?\n)?[!-<>-~ ]{{0,2}}{_QP1}){{5,}}")
# lower-case base32 (upper-case is read by the span decoder), when the text mentions base32
B32_LOWER = re.compile(r"[a-z2-7](?<![A-Za-z0-9=][a-z2-7])[a-z2-7]{15,}+={0,6}(?![A-Za-z0-9=])")
# Ascii85 (no space inside; lines may wrap), when the text mentions Ascii85 / base85
A85 = re.compile(r"(?:<~)?[!-u](?<![!-u][!-u])[!-u]{15,}+(?:\r?\n[!-u]{8,}+)*(?:~>)?")
_A85_HINT = ("ascii85", "ascii-85", "ascii 85", "base85", "base-85", "base 85", "<~")
_B32_HINT = ("base32", "base 32", "base-32", "b32")
# A1Z26: letters as their numbers 1-26 joined by "-" (a word), words by spaces, "/", "," or "|" (possessive
# and with nothing asserted after the run: a failed match never rescans the rest of the text)
_N = r"(?:2[0-6]|1[0-9]|[1-9])(?!\d)"
_N1 = r"[1-9](?<![\w.-][1-9])(?:(?<=1)[0-9]|(?<=2)[0-6])?(?!\d)"  # the first: a character class (fast skip)
A1Z26 = re.compile(rf"{_N1}(?:-{_N})++(?:[\s/,|]{{1,5}}+{_N}(?:-{_N})*+){{2,}}+")
_A1Z26_WORD = re.compile(r"[\d-]+")


def _chr(code: int) -> str:
    return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""


def _entities(span: str) -> str:
    return _ENTITY.sub(lambda m: _chr(int(m.group(1), 16) if m.group(1) else int(m.group(2))), span)


def _css(span: str) -> str:
    return _CSS.sub(lambda m: _chr(int(m.group(1), 16)), span)


def _uplus(span: str) -> str:
    return "".join(_chr(int(h, 16)) for h in _UPLUS.findall(span))


def _qp(span: str) -> bytes:
    return binascii.a2b_qp(span.encode("ascii", "ignore"))


def _b32_lower(span: str) -> bytes:
    s = span.rstrip("=").upper()
    try:
        return base64.b32decode(s + "=" * (-len(s) % 8))
    except (binascii.Error, ValueError):
        return b""


def _a85(span: str) -> bytes:
    s = "".join(span.split())
    try:
        return base64.a85decode(s, adobe=s.startswith("<~") and s.endswith("~>"))
    except (binascii.Error, ValueError):
        return b""


def keeps_markup(text: str) -> bool:
    """Whether the span decoder should also see ``text`` as written, before markup between letters is
    undone: it mentions Ascii85 and holds a run of Ascii85 characters (which include ` * _ < >)."""
    low = text.lower()
    return any(h in low for h in _A85_HINT) and A85.search(text) is not None


def _a1z26(span: str) -> str:
    words = _A1Z26_WORD.findall(span)
    if sum(w.count("-") for w in words) < 4:  # mostly single numbers: a list, not letters spelled out
        return ""
    text = " ".join("".join(chr(96 + int(n)) for n in w.split("-") if n) for w in words)
    return text if _views._english(text) else ""


# round 18: the NATO spelling alphabet ("india golf november oscar romeo echo / alfa lima lima"): a run of
# eight or more code words, words broken by "/" or a doubled space; read when the letters spell English
_NATO_CODES = """alfa alpha bravo charlie delta echo foxtrot golf hotel india juliett juliet kilo lima mike
    november oscar papa quebec romeo sierra tango uniform victor whiskey whisky xray x-ray yankee zulu"""
_NATO_WORDS = _NATO_CODES.split()
_NATO_ALT = "|".join(sorted(_NATO_WORDS, key=len, reverse=True))
NATO = re.compile(rf"\b(?:{_NATO_ALT})(?:[\s,/|]{{1,5}}+(?:{_NATO_ALT})\b){{7,}}+", re.IGNORECASE)
_NATO_HINT = ("tango", "sierra")  # (a message of eight letters or more almost always holds a "t" or an "s")


def _nato(span: str) -> str:
    words = re.split(r"\s*[/|]\s*|\s{2,}", span.strip())
    text = " ".join("".join(w[0] for w in re.findall(r"[A-Za-z-]+", word)).lower() for word in words)
    return text if _views._english(text) else ""


def _text(decoded: str | bytes) -> str:
    if isinstance(decoded, bytes):
        return decoded.decode("utf-8", "replace")
    return decoded


# (name, pattern, decoder, hint): a hint is a tuple of strings one of which the lower-cased text must hold
SPANS: tuple[tuple[str, re.Pattern[str], Callable[[str], str | bytes], tuple[str, ...]], ...] = (
    ("escapes", ENTITIES, _entities, ()),
    ("escapes", CSS, _css, ()),
    ("escapes", UPLUS, _uplus, ()),
    ("quoted-printable", QP, _qp, ()),
    ("base32", B32_LOWER, _b32_lower, _B32_HINT),
    ("ascii85", A85, _a85, _A85_HINT),
    ("a1z26", A1Z26, _a1z26, ()),
    ("nato", NATO, _nato, _NATO_HINT),
)


def spans(text: str, low: str, hint_low: str | None = None) -> list[tuple[str, str]]:
    """``(name, decoded)`` per span of ``text`` in one of these encodings (``low``: ``text`` lower-cased,
    for the hints; ``hint_low``: the lower-cased text the hints are looked for in instead, when the text
    stands in a wider one, round 24's application templates); the decoded text is returned as is (the caller
    checks it is printable)."""
    out = []
    where = low if hint_low is None else hint_low
    for name, pattern, decode, hint in SPANS:
        if hint and not any(h in where for h in hint):
            continue
        for m in pattern.finditer(text):
            decoded = _text(decode(m.group()))
            if decoded:
                out.append((name, decoded))
    return out


_ALPHA = "abcdefghijklmnopqrstuvwxyz"
_ATBASH = str.maketrans(_ALPHA + _ALPHA.upper(), _ALPHA[::-1] + _ALPHA[::-1].upper())
_ATBASH_HINT = re.compile(r"atbash|decod|cipher|mirror|alphabet")
_LETTERS = re.compile(r"[A-Za-z]+")
# common words and the words of instructions to a model, written in Atbash (plain ``in`` searches: fast)
_ATBASH_KEYS = tuple(
    w.translate(_ATBASH)
    for w in (" the ", " and ", " you", "your", " all ", " to ", "ignore", "instruction", "system", "prompt",
              "previous", "reveal", "disregard", "guidelines", "password", "secret", "forget", "print")
)  # fmt: skip


def atbash(text: str, low: str, hint_low: str | None = None) -> list[tuple[str, str]]:
    """``[("atbash", reading)]``: ``text`` read through Atbash (a=z, b=y …) when it (or ``hint_low``, see
    :func:`spans`) names the cipher or mentions decoding and a run of words on one of its lines reads as
    English only through Atbash."""
    hinted = _ATBASH_HINT.search(low if hint_low is None else hint_low)
    if sum(k in low for k in _ATBASH_KEYS) < _views._MIN_HITS or not hinted:
        return []
    read = text.translate(_ATBASH)
    lines = read.split("\n")
    for k, line in enumerate(lines):
        if _views.english_hits([w for w in _LETTERS.findall(line) if len(w) > 1]) < _views._MIN_HITS:
            continue
        if _windows.window(text.split("\n")[k], lambda w: w.translate(_ATBASH)):
            return [("atbash", read)]
    return []


__all__ = ["SPANS", "atbash", "keeps_markup", "spans"]
