"""Decoders of :func:`bastion.guard.normalize.decoded_spans` kept outside that module (round 17b moved them
here, which keeps it near its size): readings of a whole text that a model may be asked to decode (scattered
escapes, ROT13, any other Caesar shift, the text reversed: each only when the text hints at it, with the
code-point cleaning they share with :func:`bastion.guard.normalize.normalize`), and base64 cut into groups of
one to three characters or encoded word by word (round 17)."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse

# lone surrogates (JSON "\ud800" is valid JSON) and non-characters: never text, dropped before anything else
INVALID = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(chr(p << 16 | 0xFFFE) + chr(p << 16 | 0xFFFF) for p in range(1, 17))
    + "]"
)


def valid(text: str) -> str:
    """``text`` without lone surrogates and non-characters; a surrogate pair (two code points) is joined."""
    if INVALID.search(text) is None:  # round 18 (perf18): none of them, nothing to join or drop
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    return INVALID.sub("", joined)


# (searched in a lower-cased copy, the four letters whose case folding reaches ASCII mapped first: the same
# matches as re.IGNORECASE, which keeps re from skipping ahead to a first letter; round 17b, on perf17's note)
_ROT13_HINT = re.compile(r"rot[- ]?13|caesar|rotate.{0,20}letters")
_SHIFT_HINT = re.compile(r"rot[- ]?\d|caesar|shift|rotat|cipher|places? (?:back|forward)")
_REVERSE_HINT = re.compile(r"revers|backwards?|right[- ]to[- ]left|mirror|\[::-1\]")
_CASE_ODD = re.compile("[\u0130\u0131\u017f\u212a]")
_CASE_ASCII = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}


def _lower(text: str) -> str:
    """``text`` lower-cased for the hint searches (İ ı ſ K read as i i s k, as re.IGNORECASE reads them)."""
    return (_CASE_ODD.sub(lambda m: _CASE_ASCII[m.group()], text) if not text.isascii() else text).lower()


_COMMON = frozenset(
    re.findall(
        r"\w+",
        "the and you your all to of is are in that it for this with not be me my what now do say an as on "
        "from any ignore previous instructions system prompt tell rules reveal",
    )
)
_ANY_ESCAPE = re.compile(
    r"%[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|&#(?:x[0-9A-Fa-f]{1,6}|\d{1,7});"
)
_CODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})|\\x([0-9A-Fa-f]{2})")


def _code_escape(m: re.Match[str]) -> str:
    return chr(int(m.group(1) or m.group(2) or m.group(3), 16) % 0x110000)


def _unescape_all(text: str) -> str:
    """Every ``%NN``, ``\\xNN``, ``\\uXXXX``, ``\\UXXXXXXXX`` and ``&#NN;`` in ``text``, decoded in place."""
    import html

    out = urllib.parse.unquote(_CODE_ESCAPE.sub(_code_escape, text), errors="replace")
    return valid(html.unescape(out))


def _best_shift(text: str) -> tuple[int, str] | None:
    """The Caesar shift (1-25) whose output holds the most common English words (at least three)."""
    sample = text[:1500]
    counts = _shift_counts(sample)
    best, best_count = 0, 2
    for k in range(1, 26):
        if counts is None:
            table = str.maketrans(
                _ALPHA + _ALPHA.upper(), _ALPHA[k:] + _ALPHA[:k] + (_ALPHA[k:] + _ALPHA[:k]).upper()
            )
            count = sum(w in _COMMON for w in re.findall(r"[a-z]+", sample.translate(table).lower()))
        else:
            count = counts[k]
        if count > best_count:
            best, best_count = k, count
    if not best:
        return None
    table = str.maketrans(
        _ALPHA + _ALPHA.upper(), _ALPHA[best:] + _ALPHA[:best] + (_ALPHA[best:] + _ALPHA[:best]).upper()
    )
    return best, text.translate(table)


def _shift_counts(sample: str) -> list[int] | None:
    """Per shift k, the common words among ``sample``'s words shifted by k (what the loop of _best_shift
    counts, read off one split: round 18, perf18). A shift maps [a-z] onto itself, so the runs of [a-z] in
    the shifted, lower-cased sample are the sample's own runs, shifted, as long as every ASCII letter of the
    lower-cased sample comes from an ASCII letter (not so for K, the Kelvin sign, or İ: None, count them
    the long way)."""
    words = _AZ_RUN.findall(sample.lower())
    if sum(map(len, words)) != len(_ASCII_LETTER.findall(sample)):
        return None
    counts = [0] * 26
    for w in words:
        for k in _SHIFTED_FROM.get(w, ()):
            counts[k] += 1
    return counts


_ALPHA = "abcdefghijklmnopqrstuvwxyz"
_AZ_RUN = re.compile(r"[a-z]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _sources() -> dict[str, tuple[int, ...]]:
    """word -> the shifts k (1-25, ascending) that turn it into a common word."""
    out: dict[str, tuple[int, ...]] = {}
    for k in range(1, 26):
        back = str.maketrans(_ALPHA, _ALPHA[-k:] + _ALPHA[:-k])
        for word in sorted(_COMMON):
            out[word.translate(back)] = (*out.get(word.translate(back), ()), k)
    return out


_SHIFTED_FROM = _sources()


def whole_readings(text: str, hint: str | None = None) -> list[tuple[str, str]]:
    """``(name, text)`` per whole-text reading ``text`` (or ``hint``, a wider text it stands in: round 24's
    application templates) hints at (scattered escapes need no hint)."""
    out: list[tuple[str, str]] = []
    if len(_ANY_ESCAPE.findall(text, 0, 100_000)) >= 6:  # scattered escapes: decode them all in place
        out.append(("escapes-scattered", _unescape_all(text)))
    low = _lower(text if hint is None else hint)
    if _ROT13_HINT.search(low):
        out.append(("rot13", codecs.decode(text, "rot13")))
    if _SHIFT_HINT.search(low):
        shifted = _best_shift(text)
        if shifted is not None and shifted[0] != 13:
            out.append((f"caesar-{26 - shifted[0]}", shifted[1]))
    if _REVERSE_HINT.search(low):
        out.append(("reversed", text[::-1]))
    return out


# -- base64 cut into groups of one to three characters ("SWd ub3 JlI …") or encoded word by word
# ("SWdub3Jl YWxs cHJldmlvdXM"), decoded by :func:`bastion.guard.normalize.decoded_spans`. Round 17b
# (attack17z): groups may be split by line breaks, commas or semicolons too, and word-by-word tokens unpadded;
# short groups are decoded without a mention of base64 or decoding in texts of up to UNHINTED_MAX characters
# (prompts, short tool outputs; a long document needs the mention, which keeps its scan fast)
# (each starts with a character class and checks what stands before it behind it, and its repeats are
# possessive: the searches skip ahead fast on long text)
_SEP = r"(?=[ \t\n,;])[ \t]*+(?:[\n,;][ \t]*+)?"
SHORT_GROUPS = re.compile(
    rf"[A-Za-z0-9+/](?<![\w+/=][A-Za-z0-9+/])[A-Za-z0-9+/]{{0,2}}+{_SEP}(?:[A-Za-z0-9+/]{{1,3}}+{_SEP}){{4,}}"
    r"[A-Za-z0-9+/]{1,3}+={0,2}(?![\w+/=])"
)
WORD_GROUPS = re.compile(
    rf"[A-Za-z0-9+/](?<![\w+/=][A-Za-z0-9+/])[A-Za-z0-9+/]{{1,39}}+={{0,2}}{_SEP}"
    rf"(?:[A-Za-z0-9+/]{{2,40}}+={{0,2}}{_SEP})+[A-Za-z0-9+/]{{2,40}}+={{0,2}}(?![\w+/=])"
)
UNHINTED_MAX = 4000  # characters of a text whose short groups are decoded without a mention of decoding
# round 17c (attack17y: "radix-64" groups after 4 KB of padding passed 15-18 of 18): in a longer text the
# short groups are searched only where twelve or more tokens of one to three characters stand in a row (a
# chain of this pattern's matches, each starting where the one before ended: one fast pass over the text)
_DENSE = re.compile(
    r"[ \t\n,;][A-Za-z0-9+/]{1,3}+[ \t\n,;]++[A-Za-z0-9+/]{1,3}+[ \t\n,;]++[A-Za-z0-9+/]{1,3}+[ \t\n,;]++"
    r"[A-Za-z0-9+/]{1,3}+(?=[ \t\n,;])"
)
_DENSE_CHAIN = 3


def dense_regions(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each stretch of ``text`` holding a run of twelve or more short tokens."""
    out: list[tuple[int, int]] = []
    start, end, n = -1, -1, 0
    for m in _DENSE.finditer(text):
        if m.start() == end:
            end, n = m.end(), n + 1
            continue
        if n >= _DENSE_CHAIN:
            out.append((start, min(len(text), end + 24)))
        start, end, n = m.start(), m.end(), 1
    if n >= _DENSE_CHAIN:
        out.append((start, min(len(text), end + 24)))
    return out


_SPLIT = re.compile(r"[\s,;]+")
_MARK = re.compile(r"[0-9+/A-Z]")
_MARKED = re.compile(r"[0-9+/A-Z][A-Za-z0-9+/=]*")  # one per token holding a mark (counted at its first)


def short_groups(span: str) -> list[str]:
    """The candidate base64 texts of a run of short groups: the groups joined, with up to three leading groups
    (words before the encoded text) left out; [] unless half the groups hold a capital, a digit, + or /."""
    groups = _SPLIT.split(span.strip())
    if 2 * sum(bool(_MARK.search(g)) for g in groups) < len(groups):
        return []
    return ["".join(groups[k:]) for k in range(4) if len("".join(groups[k:])) >= 16]


def _word64(token: str) -> str | None:
    """One base64 token (padding restored) decoded to a printable word, else None."""
    token = token.rstrip("=")
    if len(token) % 4 == 1:
        return None
    try:
        word = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return word if word.isprintable() and any(c.isalpha() for c in word) else None


def word_groups(span: str) -> str | None:
    """The longest run of three or more tokens of ``span`` that decode one by one (base64 encoded word by
    word, padded or not), the decoded words joined by spaces; None unless half its tokens hold a capital, a
    digit, + or / (ordinary words before or after the run are left out)."""
    tokens = _SPLIT.split(span.strip())
    if 4 * len(_MARKED.findall(span)) < len(tokens):
        return None  # mostly plain words (prose in a text that mentions decoding): not decoded one by one
    best: list[tuple[str, str]] = []
    run: list[tuple[str, str]] = []
    for token in [*tokens, ""]:
        word = _word64(token) if token else None
        if word is not None:
            run.append((token, word))
            continue
        if len(run) > len(best):
            best = run
        run = []
    if len(best) < 3 or 2 * sum(bool(_MARK.search(t)) for t, _ in best) < len(best):
        return None
    return " ".join(w for _, w in best)


_B64_HINTS = ("base64", "base 64", "base-64", "b64", "decod", "encod")


def b64_hinted(text: str) -> bool:
    """Whether ``text`` mentions base64 or decoding (base64 encoded word by word is searched only then)."""
    low = text.lower()
    return any(h in low for h in _B64_HINTS)


__all__ = [
    "INVALID",
    "SHORT_GROUPS",
    "WORD_GROUPS",
    "b64_hinted",
    "dense_regions",
    "short_groups",
    "valid",
    "whole_readings",
    "word_groups",
]
