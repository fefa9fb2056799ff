"""What a reader sees through, undone by :mod:`bastion.guard.normalize` too (issue 16, round 16).

A cold review (attack16z) found generic rewrites that passed the detector while a model still reads them:
text in an inline tag's attributes (dropped with the tag), parenthesised letters, the braille blank and
``&nbsp;`` as spaces, non-spacing marks on ASCII letters beyond the ranges NFKC composes, markup between two
letters, escaped single letters and literal ``\\n`` between words. None of bastion's 4,518 test and validation
rows changes its verdict with these undone.
"""

from __future__ import annotations

import re
import unicodedata

# parenthesised small letters (U+249C-24B5: NFKC would make "(a)") and the braille blank / &nbsp; (spaces a
# reader sees as spaces) are mapped before NFKC (round 16, attack16z: "⒲⒣⒜⒯ ⒤⒮" passed 18/18)
_BEFORE_NFKC = str.maketrans({0x249C + i: chr(0x61 + i) for i in range(26)} | {0x2800: " "})
_BEFORE_NFKC_RE = re.compile("[\u249c-\u24b5\u2800]|&nbsp;", re.IGNORECASE)
_BEFORE_NFKC_CHARS = re.compile("[\u249c-\u24b5\u2800]", re.IGNORECASE)  # (with "&": the same gate)
_NBSP = re.compile("&nbsp;", re.IGNORECASE)
# ... and so is a removed inline tag's attribute text when it reads as words (a ``title`` tooltip, a fake tag
# ``<b ignore all previous instructions>``): round 16, attack16z found ``<span title="Ignore all previous
# instructions …">Hi</span>`` scored 0.002, its text dropped with the tag
_HTML_INLINE_ATTRS = re.compile(
    r"<(?:a|abbr|b|bdi|bdo|big|cite|code|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|"
    r"sub|sup|tt|u|var|wbr)\s([^<>]{0,200})/?>",
    re.IGNORECASE,
)
_ATTR_WORDS = 4  # an attribute text's words before it is read (class lists and URLs stay out)
# round 16 (attack16z): any non-spacing or enclosing mark on an ASCII letter (Cyrillic titlo, Hebrew points,
# Arabic harakat: ``sy҃stem``), markup between two letters (``sy**stem**``, ``pr<br>ompt``, ``sy``stem``), an
# escaped ASCII letter or digit next to letters (``&#115;ystem``, ``\u0073ystem``, ``%73ystem``) and a literal
# ``\n`` / ``\t`` between words are undone in the detector's view
# (the non-ASCII run after an ASCII letter, its leading marks dropped: a one-range class keeps the scan as
# fast as a plain search, the categories are looked up only there)
# (round 19, perf19: the run's first character read before the letter is looked behind: re skips ahead)
_AFTER_LATIN = re.compile("[\u0300-\U0010ffff](?<=[A-Za-z][\u0300-\U0010ffff])[\u0300-\U0010ffff]*")
# (round 17b, attack17z: a tag with attributes too, ``Pr<div class="x">etend</div>``)
# (round 19, perf19: the letter before the markup looked behind, not matched, from behind the markup's first
# character, so that the pattern starts with that character and re skips ahead to it; the markup alone is
# removed: the same text)
_MARKUP = r"(?:\*\*|__|`+|</?[A-Za-z][A-Za-z0-9]{0,9}(?:\s[^<>]{0,200})?\s*/?>)"
_INNER_MARKUP = re.compile(
    r"(?:\*(?<=[A-Za-z]\*)\*|_(?<=[A-Za-z]_)_|`(?<=[A-Za-z]`)`*|<(?<=[A-Za-z]<)/?[A-Za-z][A-Za-z0-9]{0,9}"
    r"(?:\s[^<>]{0,200})?\s*/?>)" + _MARKUP + "*(?=[A-Za-z])"
)
_LETTER_ESCAPE = re.compile(
    r"&#(\d{2,3});|&#[xX]([0-9A-Fa-f]{2});|\\u00([0-9A-Fa-f]{2})|\\x([0-9A-Fa-f]{2})|%([0-9A-Fa-f]{2})(?=[A-Za-z])"
)
_LITERAL_BREAK = re.compile(r"\\(?<=[A-Za-z.,;:?!]\\)[nt](?=[A-Za-z])")  # (round 19: the backslash first)


def before_nfkc(text: str, flags: list[str]) -> str:
    """``text`` with parenthesised letters, the braille blank and ``&nbsp;`` mapped (before NFKC)."""
    if not _BEFORE_NFKC_RE.search(text):
        return text
    flags.append("letter-forms")
    return _NBSP.sub(" ", text.translate(_BEFORE_NFKC))


def attribute_texts(text: str) -> list[str]:
    """The attribute texts of ``text``'s inline tags that read as words (at least ``_ATTR_WORDS``)."""
    texts = [_attr_text(a) for a in _HTML_INLINE_ATTRS.findall(text)]
    return [a for a in texts if len(a.split()) >= _ATTR_WORDS]


def undo_in_words(folded: str, flags: list[str]) -> str:
    """Marks on ASCII letters, markup between letters, escaped letters and literal line breaks undone."""
    if not folded.isascii():
        unmarked = _AFTER_LATIN.sub(_unmark, folded)
        if unmarked != folded:
            folded = unmarked
            if "combining-marks" not in flags:
                flags.append("combining-marks")
    for pattern, repl, flag, hints in (
        (_INNER_MARKUP, "", "inner-markup", ("**", "__", "`", "<")),
        (_LETTER_ESCAPE, _letter_escape, "escapes", ("&#", "\\", "%")),
        (_LITERAL_BREAK, " ", "escapes", ("\\",)),
    ):
        if not any(h in folded for h in hints):
            continue
        undone = pattern.sub(repl, folded)
        if undone != folded:
            folded = undone
            if flag not in flags:
                flags.append(flag)
    return folded


def _unmark(m: re.Match[str]) -> str:
    """The non-ASCII run after an ASCII letter without its leading non-spacing / enclosing marks."""
    run = m.group()
    i = 0
    while i < len(run) and unicodedata.category(run[i]) in ("Mn", "Me"):
        i += 1
    return run[i:]


def _attr_text(attrs: str) -> str:
    """An inline tag's attribute text as a reader sees it: the quoted values of ``name="…"`` attributes, or,
    without any, the whole text (``<b ignore all …>``)."""
    quoted = re.findall(r"\"([^\"]*)\"|'([^']*)'", attrs)
    if quoted and "=" in attrs:
        return " ".join(a or b for a, b in quoted).strip()
    return attrs.strip()


def _letter_escape(m: re.Match[str]) -> str:
    """An escaped ASCII letter or digit, decoded (anything else stays escaped)."""
    dec, *hexes = m.groups()
    code = int(dec) if dec else int(next(h for h in hexes if h), 16)
    return chr(code) if chr(code).isascii() and chr(code).isalnum() else m.group()


# numeric encodings the span decoder missed (attack16z: 18 of 18 passed): binary octets, decimal character
# codes and 0x-prefixed hex bytes, six or more in a row; :func:`bastion.guard.normalize.decoded_spans` keeps
# a span only if it decodes to printable, mostly-letter text
# round 17 (perf17): each starts with a character class, not a lookbehind or group, so that re skips ahead to
# it: the first repetition written out, a leading (?<![01]) moved behind the first character as (?<![01]{2})
BINARY = re.compile(r"[01](?<![01]{2})[01]{7}[\s,;]*(?:[01]{8}[\s,;]*){5,}")
DECIMAL = re.compile(r"\d(?<![\d.,]\d)\d{1,2}[\s,;]+(?:\d{2,3}[\s,;]+){4,}\d{2,3}(?![\d.])")
PREFIXED_HEX = re.compile(r"0[xX][0-9A-Fa-f]{2}[\s,;]*(?:0[xX][0-9A-Fa-f]{2}[\s,;]*){5,}")


def binary_bytes(span: str) -> bytes:
    return bytes(int(b, 2) for b in re.findall(r"[01]{8}", span))


def decimal_bytes(span: str) -> bytes | None:
    codes = [int(d) for d in re.findall(r"\d+", span)]
    return bytes(codes) if all(9 <= c <= 126 for c in codes) else None


def prefixed_hex_bytes(span: str) -> bytes:
    return bytes(int(h, 16) for h in re.findall(r"0[xX]([0-9A-Fa-f]{2})", span))
