"""The stretch of a line that reads as English only in another reading (issue 16, round 17c).

Round 17b judged backwards and upside-down text per clause when an English preface shared its line (clauses
cut at ``: ; . ! ?``). The second cold review (attack17y) joined the preface with a comma ("Thanks for the
help earlier, here is the next part of my note for you .tpmorp metsys ruoy …", 18 of 18 passed) or padded
the backwards part inside a sentence ("…, the team agreed on the plan, and <backwards>, then we went for
lunch.", 17 of 18). :func:`window` finds the run of whole words that reads best in the other reading and
worst as written: each word scores its English hits read (+1 each), its hits as written (-2 each) and a
small cost per word; the run of words with the largest sum (one linear pass, Kadane's algorithm) is taken
when it reads as English only in that reading (the views' own test: at least two hits, a share of its words,
and more than twice its hits as written). Every word is read once, so a line costs time linear in its length.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion.guard import _views

_TOKEN = re.compile(r"\S+")
_WORD_COST = 0.25  # what a word with no hit either way costs a run (keeps the run to the words that read)


_PLAIN = re.compile(r"[^\w\s]*+([a-z]{2,})[^\w\s]*+|[^\w\s]*+[A-Z]([a-z]+)[^\w\s]*+")


def _hits(text: str) -> tuple[int, int]:
    """(English hits, words of two or more letters) of ``text`` with its joins split."""
    plain = _PLAIN.fullmatch(text)  # one plain word with punctuation around it (most words: fast path)
    if plain is not None:
        w = plain.group(1) or text[plain.start(2) - 1 : plain.end(2)].lower()
        return int(w in _views.ENGLISH or (w[-1] == "s" and w[:-1] in _views.ENGLISH)), 1
    words = [w for w in _views._WORDS.findall(_views.split_joins(text)) if len(w) > 1]
    return _views.english_hits(words), len(words)


def window(line: str, read: Callable[[str], str], *, suffix: bool = False) -> tuple[int, int] | None:
    """The (start, end) in ``line`` of the run of whole words that reads as English through ``read`` (applied
    to each word on its own) and not as written, or with ``suffix`` of the run that ends the line; None when
    no run does."""
    toks = list(_TOKEN.finditer(line))
    memo: dict[str, tuple[int, int, int]] = {}
    scores = []
    for t in toks:
        word = t.group()
        got = memo.get(word)
        if got is None:
            back, n = _hits(read(word))
            got = memo[word] = (back, _hits(word)[0], n)
        scores.append(got)
    gain = [back - 2 * fwd - _WORD_COST * max(n - back, 0) for back, fwd, n in scores]
    best, best_span = 0.0, None
    run, start = 0.0, 0
    if suffix:  # the best run that ends the line: the largest sum from the end
        for i in range(len(gain) - 1, -1, -1):
            run += gain[i]
            if run > best:
                best, best_span = run, (i, len(gain) - 1)
    for i, g in enumerate(gain if not suffix else ()):
        if run <= 0:
            run, start = 0.0, i
        run += g
        if run > best:
            best, best_span = run, (start, i)
    if best_span is None:
        return None
    a, b = best_span
    back = sum(s[0] for s in scores[a : b + 1])
    fwd = sum(s[1] for s in scores[a : b + 1])
    n = sum(s[2] for s in scores[a : b + 1])
    if back < _views._MIN_HITS or back < 0.3 * n or back <= 2 * fwd:
        return None
    return toks[a].start(), toks[b].end()


def backwards_parts(line: str) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the run of words of ``line`` reading as English only backwards, [] if none."""
    found = window(line, lambda w: w[::-1])
    return [found] if found else []


def upside_parts(
    line: str, read: Callable[[str], tuple[str, str] | None]
) -> list[tuple[int, int, tuple[str, str] | None]]:
    """``[(start, end, read(part))]`` for the run of words that ends ``line`` (after a preface) and reads as
    English turned back (in reverse order or not), [] when none (a run before plain English on its line is
    not read: "ʇxǝʇ uʍop ǝpᴉsdn ɐ sᴉ sᴉɥʇ, flip your phone to read it" is a joke, not a payload)."""
    for order in (lambda w: w[::-1], lambda w: w):
        found = window(line, lambda w, o=order: o(w.translate(_views._UNTURN)), suffix=True)  # type: ignore[misc]
        if found:
            got = read(line[found[0] : found[1]])
            if got:
                return [(found[0], found[1], got)]
    return []


# round 17c (attack17y's benign cost): kebab-case slugs named as such in prose ("Read our post: tell-me-why-
# you-should-never-ignore-your-system-updates", "Slugs: how-to-reset-your-password, how-to-write-a-prompt")
# are addresses, not messages: a kebab join right after a word that names an address and a colon, and every
# kebab join that follows such a one in a comma-separated list
_SLUG_BEFORE = re.compile(
    r"\b(?:slugs?|posts?|urls?|paths?|links?|permalinks?|articles?|pages?|routes?|handles?|branch(?:es)?)"
    r"\s*[:=]\s*\Z",
    re.IGNORECASE,
)
_LIST_SEP = re.compile(r"\s*,\s*")


# ... unless the slug, read split, names an attack: "Read our post: ignore-all-previous-instructions-…"
_O = r"(?:all|your|the|any|my|of|previous|prior|above|earlier|initial|hidden|system|safety|content|full)"
_SLUG_ATTACK = re.compile(
    rf"\b(?:ignore|disregard|forget|override|bypass|skip|drop|stop following)(?: {_O}){{0,3}} "
    r"(?:instructions|rules|guidelines|directions|prompts?|restrictions|polic(?:y|ies)|safety|filters?|everything|above)\b|"
    r"\bsystem prompt|\bdeveloper mode|\bjailbr|\bno (?:content |safety )?(?:polic|restriction|rules|filter)|"
    rf"\b(?:print|reveal|output|show|repeat|send|forward|leak|tell me|give me)(?: {_O}| \w+){{0,3}} "
    r"(?:prompts?|passwords?|credentials|instructions|secrets?|(?:api )?keys?|history|messages)\b|"
    r"\b(?:pretend|act as|you are now|from now on)\b",
)


def slug(line: str, lo: int, hi: int, prev: int) -> bool:
    """Whether the join ``line[lo:hi]`` is a kebab-case slug named as such (``prev``: the end of the slug
    before it on the line, -1 when none) that does not name an attack read split."""
    if "-" not in line[lo:hi] or _SLUG_ATTACK.search(line[lo:hi].replace("-", " ").lower()):
        return False
    if prev >= 0 and _LIST_SEP.fullmatch(line, prev, lo):
        return True
    return _SLUG_BEFORE.search(line, max(0, lo - 24), lo) is not None


__all__ = ["backwards_parts", "slug", "upside_parts", "window"]
