"""Letters of an unknown alphabet read as a substitution fitted to the vocabulary (issue 16, round 18b).

The cold review of round 18's readings (attack18x) passed 18 of 18 injections written in "fancy text" made of
Canadian syllabics and other signs (``ᓰᘜᑎᝪᖇᗴ ᗩᒪᒪ ᑭᖇᗴᐯᓰᝪᑌᔕ``): half its letters have no skeleton in
Unicode's confusables data, and :func:`bastion.guard._skeleton._guess_unread` guesses one unknown letter per
word. Here every letter with no skeleton is an unknown of one substitution over the whole text (the same sign
is the same letter everywhere, two signs two letters), and the letters with a skeleton are taken as read. The
words are fitted to the vocabulary by their patterns (length, repeated letters, the letters already read): a
depth-first search over the words with the fewest candidates first, each word fitted or left, within a budget
of steps (the work is bounded whatever the text). The reading is kept when most words fit; real text in those
scripts (Cree, Inuktitut) fits no English words and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

from bastion.guard import _skeleton

# a word's letters from its first one outside ASCII (a class first: fast on text with few of them)
_TAIL = re.compile(r"[^\W\d_\x00-\x7f][^\W\d_]*+")


def wide_words(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, word)`` per word of ``text`` holding a letter outside ASCII."""
    for m in _TAIL.finditer(text):
        a = m.start()
        while a > 0 and text[a - 1].isalpha():  # (the ASCII letters before its first wide one)
            a -= 1
        yield a, m.end(), text[a : m.end()]


_MAX_WORDS = 60  # distinct words of three signs or more fitted (the first ones of the text)
# scripts of their own, written with vowel signs or syllables (Hebrew, Arabic, the Indic scripts, Thai, Lao,
# Hangul, kana): no "fancy text" alphabet borrows from them
_SCRIPT = re.compile(r"[\u0590-\u06ff\u0900-\u0eff\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\uac00-\ud7af]")
_MIN_UNREAD = 3  # signs with no skeleton before a text is fitted
_MAX_UNREAD = 26  # (more distinct signs than letters: a script of its own)
_BUDGET = 1_500  # search steps (the fancy texts of attack18x fit in under 100)
_MIN_FIT = 0.6  # share of the words (of two letters or more) that must fit


def _shape(word: tuple[str, ...] | str) -> tuple[int, ...]:
    """Where each letter of ``word`` was first seen ("seen" → 0, 1, 1, 3): the pattern of its repeats."""
    first: dict[str, int] = {}
    return tuple(first.setdefault(c, i) for i, c in enumerate(word))


@cache
def _by_shape() -> dict[tuple[int, ...], tuple[str, ...]]:
    from bastion.guard._wordplay import _forms

    out: dict[tuple[int, ...], list[str]] = {}
    for w in sorted(_forms()):
        out.setdefault(_shape(w), []).append(w)
    return {k: tuple(v) for k, v in out.items()}


def _pattern(word: str) -> tuple[str, ...]:
    """``word`` as letters read (ASCII, lower case) and unknown signs (kept as they are)."""
    out = []
    for c in word:
        x = _skeleton._letter(c)
        out.append(x.lower() if x.isascii() else c)
    return tuple(out)


def _candidates(pattern: tuple[str, ...]) -> list[str]:
    """The vocabulary's words with ``pattern``'s repeats and letters already read (a sign read as a letter
    no other sign of the word reads as)."""
    fixed = [(i, p) for i, p in enumerate(pattern) if p.isascii()]
    signs = {w for i, w in enumerate(pattern) if not w.isascii()}
    out = []
    for w in _by_shape().get(_shape(pattern), ()):
        if all(w[i] == p for i, p in fixed) and not any(w[i] in signs for i, _ in fixed):
            out.append(w)
    return out


def _search(words: list[tuple[list[tuple[int, str]], list[str]]], need: float) -> dict[str, str]:
    """The sign → letter map that fits the most ``words`` (their signs by position, their candidates), found
    within the budget; a branch that cannot fit ``need`` words is cut."""
    best: tuple[int, dict[str, str]] = (0, {})
    steps = [0]

    def go(i: int, fitted: int, table: dict[str, str], used: set[str]) -> None:
        nonlocal best
        if fitted > best[0]:
            best = (fitted, dict(table))
        left = fitted + len(words) - i
        if i == len(words) or left <= best[0] or left < need or steps[0] > _BUDGET:
            return
        signs, cands = words[i]
        for w in cands:
            steps[0] += 1
            new: dict[str, str] = {}
            for k, p in signs:
                x = w[k]
                got = table.get(p) or new.get(p)
                if got is None:
                    if x in used or x in new.values():
                        break
                    new[p] = x
                elif got != x:
                    break
            else:
                table.update(new)
                used.update(new.values())
                go(i + 1, fitted + 1, table, used)
                for p in new:
                    used.discard(table.pop(p))
            if steps[0] > _BUDGET:
                return
        go(i + 1, fitted, table, used)  # (this word left unfitted)

    go(0, 0, {}, set())
    return best[1]


def fitted(text: str) -> str | None:
    """``text`` with the signs of its words read by the substitution that fits the vocabulary best, when
    ``_MIN_FIT`` of its words of three letters or more fit (two of five letters or more among them) and the
    reading is English; None when it has too few signs with no skeleton, a script of its own, or no fit."""
    if text.isascii() or not _skeleton._WIDE_LETTER.search(text) or _SCRIPT.search(text):
        return None
    seen: dict[str, None] = {}
    for _, _, word in wide_words(text):
        if len(word) > 2:
            seen[word] = None
            if len(seen) >= _MAX_WORDS:
                break
    distinct = list(seen)
    if len(distinct) < 3:
        return None
    patterns = {w: _pattern(w) for w in distinct}
    known = _skeleton_known()
    unread = {p for pat in patterns.values() for p in pat if not p.isascii()}
    if not _MIN_UNREAD <= len(unread) <= _MAX_UNREAD:
        return None  # (more signs than letters: a script of its own, not a substitution of the alphabet)
    need = max(3, _MIN_FIT * len(patterns))
    plain = sum(1 for pat in patterns.values() if all(p.isascii() for p in pat) and "".join(pat) in known)
    words = [(pat, _candidates(pat)) for pat in dict.fromkeys(patterns.values())]
    words = [x for x in words if x[1] and any(not p.isascii() for p in x[0])]
    if len(words) + plain < need:
        return None  # (too few words have a candidate to fit)
    words.sort(key=lambda x: (len(x[1]), -len(x[0])))
    signed = [([(k, p) for k, p in enumerate(pat) if not p.isascii()], cands) for pat, cands in words]
    table = _search(signed, need - plain)
    if not table:
        return None
    read = {w: "".join(table.get(p, p) for p in pat) for w, pat in patterns.items()}
    fit = [x for x in read.values() if x in known]
    if len(fit) < need or sum(len(x) > 4 for x in fit) < 2:
        return None
    parts, at = [], 0
    for a, b, word in wide_words(text):
        if word in read:
            parts += [text[at:a], read[word]]
            at = b
    return "".join(parts) + text[at:]


@cache
def _skeleton_known() -> frozenset[str]:
    from bastion.guard._wordplay import _forms

    return _forms()


__all__ = ["fitted"]
