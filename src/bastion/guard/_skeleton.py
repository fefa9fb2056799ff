"""Words written in letters of other scripts that look Latin, folded by the Unicode confusables data
(issue 16, round 18).

The second cold review of the round-17 readings (attack17y) passed 15-18 of 18 injections written in Lisu
(``ꓲꓖꓠꓳꓣꓰ``), Cherokee (``ᎪᏞᏞ``), Latin letters with strokes (``ɨǥnøɍɇ``) or Cyrillic with diacritics
(``ӓll``): the look-alike tables of :mod:`bastion.guard._views` hold a few dozen Cyrillic and Greek letters
only. :func:`skeleton_view` reads each word holding a letter outside ASCII through the skeleton of Unicode's
confusables data (UTS #39, as packaged by ``confusable-homoglyphs``: ``ꓲ`` → ``l``, ``Ꭺ`` → ``A``,
``ɨ`` → ``i̵``), combining marks stripped after the mapping, and, for letters the data leaves out, through
their canonical decomposition (``ӓ`` → ``а`` + mark → ``a``) or their Unicode name (``ⱥ``, LATIN SMALL
LETTER A WITH STROKE → ``a``). A line is rewritten only when the words it folds to ASCII read as English
(the look-alike view's test), so real Greek, Cyrillic, Cherokee or Lisu prose is left alone. The table is
loaded on the first text with a letter outside ASCII (about 30 ms, once); ASCII text never loads it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from functools import cache, lru_cache
from importlib import resources

from bastion.errors import ConfigError
from bastion.guard._english import _MIN_HITS, english_hits

# a letter outside ASCII (a cheap class: ordinary English text has none)
_WIDE_LETTER = re.compile(r"[^\W\d_\x00-\x7f]")
_WORD = re.compile(r"[^\W\d_]+")
_NAMED = re.compile(r"LATIN (SMALL|CAPITAL) LETTER ([A-Z]) WITH ")
_MAX_LINE = 2_000  # characters of a line read at once (a longer line is read in windows of this many)
_MAX_WINDOWS = 12  # windows with a letter outside ASCII read per text (round 18b: a long line was cut)


def _strip(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@cache
def _table() -> dict[str, str]:
    """Character → the ASCII letter it is confusable with, from the package's ``confusables.json`` (a
    character whose homoglyphs are not ASCII is followed one step further: Cyrillic ``в`` → ``ʙ`` → ``B``)."""
    try:
        data = json.loads(
            resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
        )
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:  # pragma: no cover
        # a core dependency: without its table the detector would be silently weaker, so it fails (closed)
        raise ConfigError(
            "the guard needs Unicode's confusables data from the 'confusable-homoglyphs' package: "
            "reinstall bastion-ml (pip install -e .)"
        ) from exc
    out: dict[str, str] = {}
    for key, entries in data.items():
        if len(key) != 1 or key.isascii():
            continue
        targets = [e["c"] for e in entries]
        for hop in (targets, [x["c"] for t in targets if len(t) == 1 for x in data.get(t, ())]):
            found = next((s for t in hop if len(s := _strip(t)) == 1 and s.isascii() and s.isalpha()), None)
            if found is not None:
                out[key] = found
                break
    return out


@cache
def _letter(c: str) -> str:
    """The ASCII letter ``c`` reads as, or ``c`` itself."""
    if c.isascii():
        return c
    table = _table()
    base = _strip(c) or c
    for x in (c, base):
        if x.isascii():
            return x
        if x in table:
            return table[x]
    m = _NAMED.match(unicodedata.name(c, ""))
    if m is not None:
        return m.group(2).lower() if m.group(1) == "SMALL" else m.group(2)
    return c


# letters whose skeleton has two readings: Lisu ``ꓲ`` is ``l`` in the data and ``I`` in an all-capital word,
# Cyrillic ``ӱ`` folds to ``y`` (``у``) but stands for ``u``; tried when the first reading is not English
_ALT = str.maketrans("ylY", "uiU")


@lru_cache(maxsize=1 << 14)
def _fold(word: str) -> str:
    """``word`` folded to its skeleton (letters without one kept), the second reading when only it is
    English."""
    out = "".join(map(_letter, word))
    if out.isascii() and "l" in out and out.replace("l", "").isupper():
        out = out.replace("l", "I")  # "lGNORE": an all-capital word
    if english_hits([out]) or not out.isascii():
        return out
    alt = "".join(x.translate(_ALT) if not c.isascii() else x for c, x in zip(word, out, strict=True))
    return alt if english_hits([alt]) else out


def _guess_unread(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """``spans`` with a letter the data gives no skeleton (Cherokee QUA ``Ꮖ``, written for ``I``) read as the
    one letter that makes the words holding it words of the vocabulary, when a majority of those words agree
    (each word read alone: the one word of its length that fits its other letters)."""
    votes: dict[str, Counter[str]] = {}
    for _, _, word in spans:
        unread = {c for c in word if not c.isascii()}
        if len(unread) != 1 or len(word) < 3:
            continue
        c = unread.pop()
        pattern = "".join(x.lower() if x.isascii() else x for x in word)  # (Cherokee has small letters)
        fits = {
            w[pattern.index(c)]
            for w in _by_length().get(len(word), ())
            if all(p in (c, x) for p, x in zip(pattern, w, strict=True))
            and len({w[k] for k, p in enumerate(pattern) if p == c}) == 1
        }
        if len(fits) == 1:
            votes.setdefault(c, Counter())[fits.pop()] += 1
    if not votes:
        return spans
    table: dict[str, str | int | None] = {c: v.most_common(1)[0][0] for c, v in votes.items()}
    upper: dict[str, str | int | None] = {c: str(x).upper() for c, x in table.items()}
    return [
        (a, b, w.translate(str.maketrans(upper if w.isupper() or w[1:].isupper() else table)))
        for a, b, w in spans
    ]


@cache
def _by_length() -> dict[int, list[str]]:
    from bastion.guard._wordplay import VOCABULARY

    out: dict[int, list[str]] = {}
    for w in sorted(VOCABULARY):
        out.setdefault(len(w), []).append(w)
    return out


def skeleton_view(text: str) -> str | None:
    """The lines whose words holding a letter outside ASCII read as English once folded to their Latin
    skeleton, those words folded; None when there is none."""
    if text.isascii() or not _WIDE_LETTER.search(text):
        return None
    new, lo, windows = [], 0, 0
    for line in text.split("\n"):
        hi = lo + len(line)
        # a long line is read in windows of _MAX_LINE characters (each tested alone), those with a letter
        # outside ASCII only, _MAX_WINDOWS past a line's first per text: the work stays linear
        for at in range(0, max(len(line), 1), _MAX_LINE):
            if (at and windows >= _MAX_WINDOWS) or not _WIDE_LETTER.search(line, at, at + _MAX_LINE):
                continue
            windows += at > 0
            folded: list[str] = []
            spans: list[tuple[int, int, str]] = []
            for m in _WORD.finditer(line, at, at + _MAX_LINE):
                word = m.group()
                if word.isascii():
                    continue
                out = _fold(word)
                if out != word:  # (a letter with no skeleton stays: Cherokee QUA in "ᏆGNORE")
                    spans.append((m.start(), m.end(), out))
                    if len(out) > 2 and out.isascii():
                        folded.append(out)
            # the look-alike view's test: three-letter words or longer, two hits and 40 % of them
            if folded and english_hits(folded) >= max(_MIN_HITS, 0.4 * len(folded)):
                spans = _guess_unread(spans)
                parts, pos = [], at
                for a, b, out in spans:
                    parts += [line[pos:a], out]
                    pos = b
                end = min(len(line), at + _MAX_LINE)
                new.append((lo + at, lo + end, "".join(parts) + line[pos:end]))
        lo = hi + 1
    if not new:
        return None
    parts, at = [], 0
    for a, b, line in new:
        parts += [text[at:a], line]
        at = b
    return "".join(parts) + text[at:]


__all__ = ["skeleton_view"]
