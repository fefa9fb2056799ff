"""What the output policy looks for beyond the PII detectors: folded views of a text, zero-click fetch forms,
loosely written card numbers, and where an unfinished fetch construct begins in a streamed answer.

* :func:`fold` — NFKC, format (Cf: zero-width, bidi, tags) and combining marks removed, casefolded,
  Cyrillic/Greek look-alikes read as Latin: the view canaries, deny lists and system-prompt runs are also
  matched in (``BASTION-CANARY…``, ``ｂａｓｔｉｏｎ``, ``bаstion`` with a Cyrillic ``а``, ``b\\u200bastion``);
* :func:`skeleton` — the folded text's letters and digits only: a canary spelt with spaces, hyphens, quotes
  and ``+`` between its parts (``"bastion-can" + "ary-…"``), or reversed, is still the canary;
* :func:`fetch_spans` — every construct that makes a markdown/HTML renderer fetch a URL or a chat client
  unfurl it: inline images and links, reference-style definitions (``[1]: http://…``), HTML tags with a URL
  attribute (``<img src>``, ``srcset``, ``<iframe>``, ``<video poster>``, ``style="…url()…"``; entities
  decoded), CSS ``url()``, autolinks, and bare URLs (``https://…``, ``www.…``); each with whether it fetches
  without a click;
* :func:`loose_cards` — Luhn-valid card numbers written in 4-digit groups with dots, slashes, spaces or across
  a line break, fullwidth digits and zero-width characters included;
* :func:`open_construct` — where, in a streamed answer, a fetch construct begins that is not finished yet
  (so the stream holds it back whatever its length).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

# Cyrillic / Greek letters that look Latin (after casefolding)
_LOOKALIKE = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "һ": "h", "ɡ": "g", "ո": "n", "ս": "u", "ı": "i", "ɩ": "i", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c",
        "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m",
        "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x", "ε": "e",
        "β": "b", "ζ": "z", "η": "n", "μ": "u",
    }
)  # fmt: skip
_DROP = frozenset(("Cf", "Mn", "Me", "Cs", "Co"))


def fold(text: str) -> str:
    """The text as it reads: compatibility forms, invisible characters, case and look-alikes folded."""
    t = unicodedata.normalize("NFKC", text)
    if not t.isascii():
        t = "".join(ch for ch in t if unicodedata.category(ch) not in _DROP)
        t = unicodedata.normalize("NFKC", t)
    return t.casefold().translate(_LOOKALIKE)


_NOT_ALNUM = re.compile(r"[\W_]+")


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """NFKC per character with invisible and combining characters dropped (case kept), and for each character
    of the result the index of the character it came from: detectors run on the folded text, their spans
    are mapped back (``ｂｏｂ＠ｅｘａｍｐｌｅ.com``, ``123-45-\u200b6789``)."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch)
            origin.append(i)
            continue
        if unicodedata.category(ch) in _DROP:
            continue
        for c in unicodedata.normalize("NFKC", ch):
            if unicodedata.category(c) not in _DROP:
                out.append(c)
                origin.append(i)
    return "".join(out), origin


def skeleton(text: str) -> str:
    """The folded text's letters and digits, nothing else."""
    return _NOT_ALNUM.sub("", fold(text))


MIN_SKELETON = 12  # shorter canaries are matched in the folded text only (a skeleton match would be chance)


def canary_in(text: str, canary: str, *, folded: str | None = None, skel: str | None = None) -> bool:
    """``canary`` is in ``text`` verbatim, folded, or (when long enough) in the skeleton, either way round."""
    if not canary:
        return False
    if canary in text:
        return True
    f = folded if folded is not None else fold(text)
    if fold(canary) in f:
        return True
    c = skeleton(canary)
    if len(c) < MIN_SKELETON:
        return False
    s = skel if skel is not None else _NOT_ALNUM.sub("", f)
    return c in s or c[::-1] in s


# -- URLs and the constructs that fetch them --------------------------------------------------------------
_SCHEME = re.compile(r"^\s*([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def url_host(url: str) -> str:
    """The host a URL would be fetched from ('' for a relative or non-network URL)."""
    u = html.unescape(url).strip().replace("\\", "/")
    m = _SCHEME.match(u)
    if m:
        scheme = m.group(1).lower()
        rest = u[m.end() :]
        if scheme in ("http", "https", "ftp", "ftps", "ws", "wss"):
            rest = rest.lstrip("/")  # browsers accept http:host, http:/host and http:///host
        elif rest.startswith("//"):
            rest = rest[2:]
        else:
            return ""  # mailto:, data:, javascript: … fetch nothing from another host
    elif u.startswith("//"):
        rest = u[2:]
    elif u.lower().startswith("www."):
        rest = u
    else:
        return ""
    authority = re.split(r"[/?#\s]", rest, maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    host = host.split("]", 1)[0] + "]" if host.startswith("[") else host.split(":", 1)[0]
    return unicodedata.normalize("NFKC", host).casefold().strip(".")


def carries_data(url: str) -> bool:
    """A URL that can carry data out in its query, fragment or sheer length."""
    u = html.unescape(url)
    return "?" in u or "#" in u or len(u) > 200


@dataclass(frozen=True)
class Fetch:
    start: int
    end: int
    url: str
    host: str
    zero_click: bool  # fetched when rendered (an image, an HTML resource), not only when clicked


_URL_BODY = r"(?:[^()\s<>]|\([^()\s]*\))+"
# link text: escaped characters and one level of nested brackets allowed, as CommonMark does (![a \] [b]](…))
_TEXT = r"(?:\\.|\[[^\[\]\n]{0,200}\]|[^\[\]\n\\]){0,200}"
_INLINE = re.compile(
    r"(!?)\[(" + _TEXT + r")\]\(\s*(?:<([^>\n]*)>|(" + _URL_BODY + r"))"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REFDEF = re.compile(r"^[ \t]{0,3}\[([^\]\n]{1,200})\]:[ \t]*(?:\n[ \t]*)?<?([^\s>]+)>?[^\n]*$", re.MULTILINE)
_TAG = re.compile(r"<([A-Za-z][\w:.-]*)((?:[^<>\"']|\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z))*)(?:>|\Z)")
_ATTR_URL = re.compile(
    r"(?:(?:https?|ftps?|wss?):[/\\]*|[/\\]{2}|(?<![\w.])www\.)[^\s\"'<>()]+|url\(\s*['\"]?([^'\")\s]+)",
    re.IGNORECASE,
)
# CSS in a <style> block: url() as a property's value or an @import (not `new URL("…")` in code)
_CSS_URL = re.compile(
    r"(?:[:,]|@import)[^;{}()\n<>\"']{0,80}?\burl\(\s*['\"]?([^'\")\s]+)['\"]?\s*\)?", re.IGNORECASE
)
_XMLNS = re.compile(r"\bxmlns(?::[\w.-]+)?\s*=\s*(?:\"[^\"]*\"|'[^']*'|\S+)", re.IGNORECASE)
# a reference-style image (![x][ref], ![x][], ![ref]): fetched from its definition's URL, wherever that is
_REF_IMAGE = re.compile(r"!\[" + _TEXT + r"\](?:\[[^\]\n]{0,200}\]|(?![\[(]))")
_BARE = re.compile(r"(?<![\w/@.])(?:(?:https?|ftps?):[/\\]*|www\.)[^\s<>\"'\[\]{}]+", re.IGNORECASE)
_CLICK_TAGS = frozenset(("a", "http:", "https:", "ftp:", "ftps:", "mailto:"))


def _trim_url(url: str) -> str:
    return url.rstrip(".,;:!?*_~'\"")


def fetch_spans(text: str) -> list[Fetch]:
    """Every construct in ``text`` that points at a network host, outermost first, not overlapping."""
    found: list[Fetch] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(a: int, b: int, url: str, zero_click: bool) -> None:
        host = url_host(url)
        if host and free(a, b):
            found.append(Fetch(a, b, url, host, zero_click))
            taken.append((a, b))

    for m in _INLINE.finditer(text):
        add(m.start(), m.end(), m.group(3) or m.group(4) or "", m.group(1) == "!")
    for m in _REFDEF.finditer(text):
        add(m.start(), m.end(), m.group(2), False)  # a link target; it carries data or not, like a link
    for m in _REF_IMAGE.finditer(text):
        # the image is what fetches its definition's URL, and the definition may come before, after, or
        # out of the checked window of a stream: every reference-style image is taken as a fetch
        if free(m.start(), m.end()):
            found.append(Fetch(m.start(), m.end(), "", "(reference)", True))
            taken.append((m.start(), m.end()))
    for m in _TAG.finditer(text):
        if not free(m.start(), m.end()):
            continue
        name = m.group(1).lower()
        attrs = _XMLNS.sub(" ", html.unescape(m.group(2)))  # namespaces name, never fetch
        for u in _ATTR_URL.finditer(attrs):
            url = u.group(1) or u.group(0)
            if url_host(url):
                add(m.start(), m.end(), url, name not in _CLICK_TAGS)
                break
    for m in _CSS_URL.finditer(text):
        add(m.start(), m.end(), m.group(1), True)
    for m in _BARE.finditer(text):
        url = _trim_url(m.group(0))
        add(m.start(), m.start() + len(url), url, False)
    found.sort(key=lambda f: f.start)
    return found


# -- card numbers written loosely -------------------------------------------------------------------------
_DIGIT = "0-9\uff10-\uff19"
_INVIS = "\u00ad\u200b-\u200f\u2060-\u2064\ufeff"
_CARD_RUN = re.compile(
    rf"(?<![{_DIGIT}\w])[{_DIGIT}][{_DIGIT}{_INVIS}]*"
    rf"(?:[ \t\u00a0{_INVIS}]*[.\-/\\_|: \t\u00a0\n\r][ \t\u00a0{_INVIS}]*\r?\n?[ \t\u00a0{_INVIS}]*"
    rf"[{_DIGIT}][{_DIGIT}{_INVIS}]*)*(?![{_DIGIT}\w])"
)
_GROUP = re.compile(rf"[{_DIGIT}][{_DIGIT}{_INVIS}]*")
_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_MAX_GROUPS = 7  # a card's five groups at most, plus a number on either side
_CARD_SHAPES = ((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3))


def _digits(s: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in s if unicodedata.category(c) == "Nd")


def _luhn(d: str) -> bool:
    return (sum(map(int, d[-1::-2])) + sum(_LUHN_DOUBLE[int(c)] for c in d[-2::-2])) % 10 == 0


def _split_card(run: str, groups: list[re.Match[str]], digits: list[str]) -> bool:
    """Two numbers alone on two lines that join into a 15/16-digit number of a card brand's prefix."""
    joined = "".join(digits)
    return (
        "\n" in run[groups[0].end() : groups[1].start()]
        and min(len(d) for d in digits) >= 4
        and len(joined) in (15, 16)
        and (joined[0] == "4" or joined[:2] in _BRANDS_2 or joined[:4] == "6011")
    )


_BRANDS_2 = frozenset(("34", "37", "51", "52", "53", "54", "55", "65"))


def loose_cards(text: str) -> list[tuple[int, int]]:
    """Spans of Luhn-valid card numbers (first digit 3–6) in a card's group shape — 4-4-4-4(-3), 4-6-5,
    4-6-4 — or as one run of fullwidth digits, whatever separates the groups (one of ``. - / \\ _ | :``,
    spaces, a line break). Numbers in other shapes (dates, versions, IPs, amounts with thousands separators,
    phone numbers) and runs of more than seven numbers (lists, tables) do not match. Two numbers alone on two
    lines match when they join into a card of a known brand's prefix (a card broken over a line anywhere)."""
    out: list[tuple[int, int]] = []
    for run in _CARD_RUN.finditer(text):
        groups = list(_GROUP.finditer(run.group(0)))
        if len(groups) > _MAX_GROUPS:
            continue  # a list or table of numbers ("4176, 4177, 4185, …"), not a card among words
        digits = [_digits(g.group(0)) for g in groups]
        i = 0
        while i < len(groups):
            hit = None
            for shape in _CARD_SHAPES:
                k = len(shape)
                if i + k <= len(groups) and tuple(len(d) for d in digits[i : i + k]) == shape:
                    hit = k
                    break
            if hit is None and 13 <= len(digits[i]) <= 19 and not groups[i].group(0).isascii():
                hit = 1  # one unbroken run of fullwidth digits or with invisible characters inside
            if hit is None and len(groups) == 2 and i == 0 and _split_card(run.group(0), groups, digits):
                hit = 2  # a card broken over two lines anywhere ("41111111\n11111111")
            if hit is not None:
                d = "".join(digits[i : i + hit])
                if d[0] in "3456" and _luhn(d):
                    out.append((run.start() + groups[i].start(), run.start() + groups[i + hit - 1].end()))
                    i += hit
                    continue
            i += 1
    return out


# -- streaming: where an unfinished construct begins --------------------------------------------------------
_OPENER = re.compile(r"[\[<]|(?<![\w/@.])(?:(?:https?|ftps?):|www\.)|url\(", re.IGNORECASE)
_BRACKET = re.compile(r"\[" + _TEXT)
_PAREN_URL = re.compile(
    r"\(\s*(?:<[^>\n]*(?:>|\Z)|" + _URL_BODY + r"|\([^()\s]*\Z)?"
    r"(?:\s+(?:\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z)|\([^)]*(?:\)|\Z)))?\s*"
)
_LABEL = re.compile(r"\[[^\]\n]{0,200}")
_DEF = re.compile(r":[ \t]*(?:\n[ \t]*)?[^\s]*[^\n]*")
_TAG_OPEN = re.compile(r"<[A-Za-z][\w:.-]*(?=[\s/>]|\Z)((?:[^<>\"']|\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z))*)")
_URL_OPEN = re.compile(r"(?:(?:https?|ftps?):[/\\]*|www\.)[^\s<>\"'\[\]{}]*", re.IGNORECASE)
_CSS_OPEN = re.compile(r"url\([^)\n]*", re.IGNORECASE)


def _reaches_end(m: re.Match[str] | None, n: int) -> bool:
    return m is not None and m.end() >= n


def _bracket_open(text: str, p: int) -> bool:
    n = len(text)
    m = _BRACKET.match(text, p)
    e = m.end() if m else p + 1
    if e >= n:
        return True
    if text[e] == "[":
        return n - p <= 420  # a nested bracket not closed yet: may still be link text, for a while
    if text[e] != "]":
        return False  # a line break or 200 characters: not link text
    e += 1
    if e >= n:
        return True  # "[text]" with what follows not known yet
    c = text[e]
    if c == "(":
        return _reaches_end(_PAREN_URL.match(text, e), n)
    if c == "[":
        return _reaches_end(_LABEL.match(text, e), n)
    if c == ":":
        return _reaches_end(_DEF.match(text, e), n)  # a reference definition runs to the end of its line
    return False


def open_construct(text: str, start: int = 0) -> int | None:
    """The position (≥ ``start``) where the earliest fetch construct that may still be unfinished at the end
    of ``text`` begins, or None. Linear in the length of the text (closed constructs are skipped)."""
    n = len(text)
    pos = start
    while True:
        m = _OPENER.search(text, pos)
        if m is None:
            return None
        p = m.start()
        ch = text[p]
        if ch == "[":
            if _bracket_open(text, p):
                return p
            pos = p + 1
            continue
        if ch == "<":
            t = _TAG_OPEN.match(text, p)
            if t is None:
                pos = p + 1
                continue
            if t.end() >= n:
                return p
            pos = t.end()
            continue
        if ch in "uU" and text[p : p + 4].lower() == "url(":
            c = _CSS_OPEN.match(text, p)
            if _reaches_end(c, n):
                return p
            pos = c.end() if c else p + 1
            continue
        u = _URL_OPEN.match(text, p)
        if _reaches_end(u, n):
            return p
        pos = u.end() if u and u.end() > p else p + 1


__all__ = [
    "Fetch",
    "canary_in",
    "carries_data",
    "fetch_spans",
    "fold",
    "fold_with_map",
    "loose_cards",
    "open_construct",
    "skeleton",
    "url_host",
]
