"""The encoded spans :func:`bastion.guard.normalize.decoded_spans` searches for, and their decoders
(moved out of :mod:`bastion.guard.normalize` in round 18; unchanged): base64 (whole, in groups, in short
groups, word by word), base32, hex, ``\\xNN`` / ``%NN`` / ``&#NN;`` escapes, Morse code, binary, decimal
and ``0x`` hex. Each decoder returns the decoded text when it is printable and mostly letters, else None.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

from bastion.guard import _decoders, _undo

_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
# round 18: base32, hex and base64 groups start with their character class, the lookbehind after it (the first
# repetition written out): re then tries a match only at such a character, not at every position (the same
# matches, pinned against the old patterns in tests/guard/test_r18_readings.py; 0.57 ms less per 10 KB)
_HEX = re.compile(r"[0-9A-Fa-f](?<![0-9A-Fa-f][0-9A-Fa-f])[0-9A-Fa-f][\s:]?(?:[0-9A-Fa-f]{2}[\s:]?){9,}")
# round 17 (perf17): the first repetition written out, so that re skips to a "\\", "%" or "&" (same matches)
_ESCAPES = re.compile(
    r"\\x[0-9A-Fa-f]{2}(?:\\x[0-9A-Fa-f]{2}){5,}|%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2}){5,}"
    r"|&#x?[0-9A-Fa-f]{2,5};(?:&#x?[0-9A-Fa-f]{2,5};){5,}"
)
_MORSE = re.compile(r"[.-][.-]{0,5}[ /]+(?:[.-]{1,6}[ /]+){11,}[.-]{1,6}")  # round 17: starts with [.-]
_MORSE_CODE = {
    code: chr(ord("a") + i)
    for i, code in enumerate(
        [".-", "-...", "-.-.", "-..", ".", "..-.", "--.", "....", "..", ".---", "-.-", ".-..", "--",
         "-.", "---", ".--.", "--.-", ".-.", "...", "-", "..-", "...-", ".--", "-..-", "-.--", "--.."]
    )
}  # fmt: skip
MORSE_HINT = re.compile(r"[.-][.-]{0,5} (?:[.-]{1,6} ){5}")
_B32 = re.compile(r"[A-Z2-7](?<![A-Za-z2-7=][A-Z2-7])[A-Z2-7]{15,}={0,6}(?![A-Za-z0-9=])")
# base64 cut into groups ("U2FsdGVk X19fYWJj ..."): groups of at most 80 characters (bounded, so the search is
# linear); every group but the last must look encoded (a digit, + or /, or a capital inside it), checked when
# decoding, so a run of ordinary words is not taken for base64
_B64_GROUPS = re.compile(
    r"[A-Za-z0-9+/](?<![\w+/=][A-Za-z0-9+/])[A-Za-z0-9+/]{3,79}\s+(?:[A-Za-z0-9+/]{4,80}\s+)+"
    r"[A-Za-z0-9+/]{2,80}={0,2}(?![\w+/=])"
)
_B64_MARK = re.compile(r"[0-9+/]|[a-z][A-Z]")


def printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 6:
        return None
    # (round 19, perf19: the same counts, by str methods mapped over the text: "\n", "\t", "\r" and " " are
    # neither printable nor letters, so they are counted apart)
    good = (
        len(text) if text.isprintable() else sum(map(str.isprintable, text)) + sum(map(text.count, "\n\t\r"))
    )
    letters = sum(map(str.isalpha, text)) + text.count(" ")
    if good / len(text) < 0.95 or letters / len(text) < 0.6:
        return None
    return text


def _b64(span: str) -> str | None:
    if not any(c.isdigit() or c.isupper() for c in span) or (span.isalpha() and span.islower()):
        return None  # a plain lower-case word is not base64
    s = span.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return printable(base64.b64decode(s, validate=True))
    except (binascii.Error, ValueError):
        return None


def _hex(span: str) -> str | None:
    digits = re.sub(r"[\s:]", "", span)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return printable(bytes.fromhex(digits))
    except ValueError:
        return None


def _escapes(span: str) -> str | None:
    if span.startswith("\\x"):
        return _hex(span.replace("\\x", ""))
    if span.startswith("&#"):
        import html

        return printable(html.unescape(span).encode("utf-8", "replace"))
    return printable(urllib.parse.unquote_to_bytes(span))


def _morse(span: str) -> str | None:
    words = [w for w in re.split(r"\s{2,}|\s*/\s*", span.strip()) if w]
    text = " ".join("".join(_MORSE_CODE.get(c, "") for c in w.split()) for w in words)
    return text if len(text.replace(" ", "")) >= 8 else None


def _b32(span: str) -> str | None:
    try:
        return printable(base64.b32decode(span.rstrip("=") + "=" * (-len(span.rstrip("=")) % 8)))
    except (binascii.Error, ValueError):
        return None


def _b64_groups(span: str) -> str | None:
    if _B64_MARK.search(span) is None:  # (round 19: no group holds a mark, so none is read; one search)
        return None
    groups = span.split()
    # ordinary words before the encoded groups ("please decode U2Fs X19f …") are left out (one slice: a long
    # run of plain words was quadratic, round 17b)
    groups = groups[next((k for k, g in enumerate(groups) if _B64_MARK.search(g)), len(groups)) :]
    if len(groups) < 2 or not all(_B64_MARK.search(g) for g in groups[:-1]):
        return None
    return _b64("".join(groups))


SPANS = (
    ("base64", _B64, _b64),
    ("base64", _B64_GROUPS, _b64_groups),
    ("base32", _B32, _b32),
    ("hex", _HEX, _hex),
    ("escapes", _ESCAPES, _escapes),
    ("morse", _MORSE, _morse),
    ("binary", _undo.BINARY, lambda s: printable(_undo.binary_bytes(s))),
    ("decimal", _undo.DECIMAL, lambda s: printable(_undo.decimal_bytes(s) or b"")),
    ("hex", _undo.PREFIXED_HEX, lambda s: printable(_undo.prefixed_hex_bytes(s))),
    (
        "base64",
        _decoders.SHORT_GROUPS,
        lambda s: next(filter(None, map(_b64, _decoders.short_groups(s))), None),
    ),
    ("base64", _decoders.WORD_GROUPS, lambda s: printable((_decoders.word_groups(s) or "").encode())),
)


__all__ = ["MORSE_HINT", "SPANS", "printable"]
