"""Word play a model reads through: words run together, vowels dropped, pig Latin (issue 16, round 18).

The second cold review of the round-17 readings (attack17y) passed injections written with no separator at
all (``ignoreallpreviousinstructions``: 11-12 of 18), with their vowels removed (``Ignr ll prvs nstrctns``:
16 of 16) and in pig Latin (``isregardDay ouryay iorpray``). Each reading here starts with a cheap search and
rewrites a line only when the words it reads back are words of :data:`VOCABULARY` (the common English words of
:mod:`bastion.guard._english` and the words instructions to a model are made of):

* a run of twelve or more letters that splits completely into three or more such words (a dynamic programme
  over the run, fewest words first) is read split; a run inside an address or a path (after ``. / @ # : =``,
  before ``. / @``) stays, and so does a hash, an identifier with digits or a German compound (they do not
  split into the words);
* a line where three or more words with no vowel after their first letter restore to one word only (the
  consonant skeleton of a word of the vocabulary that no other word of it shares) and most of the line's words
  then read as words, is read with them restored;
* a line where most words end in ``ay`` and three or more of them read back as words (the ``ay`` dropped and
  the consonants before it moved to the front) is read back.

Every pass is linear in the text's length (a run is read up to 400 letters, a word up to 16).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from bastion.guard._english import ENGLISH
from bastion.guard._views import _rewrite

# the words injections are made of, beyond the common words (a curated list: verbs of overriding and
# revealing, what they reveal, the personas and modes they ask for)
_ATTACK_WORDS = """
    above act acting admin administrator advice ai api append assistant attacker based before block bot
    browse censor censored censorship chatbot collect comply conversation configuration constraints dan
    dangerous decode decoded developer directive directives earlier encode encoded ethical ethics evil
    execute exfiltrate filters forbidden given guard harmful hack hidden illegal including inside
    internal jailbreak jailbroken leak limitations limits locked malicious moral morals obey persona
    pretend programming reveal roleplay rule secret secrets shell simulate starting summarise summarize
    system told unfiltered unlocked unrestricted uncensored url void window were anymore longer nothing
    everyone somebody someone ignore ignoring ignored disregarding disregarded forgetting overridden
    following follows prompts replies replying restricted restriction answering answers questions
    responses messages passwords keys tokens rules instruction render https http markdown html image replace
"""
VOCABULARY = ENGLISH | frozenset(_ATTACK_WORDS.split())
_MAX_WORD = max(map(len, VOCABULARY))
_ONE_LETTER = frozenset("ai")


def _forms() -> frozenset[str]:
    """The vocabulary and the plural, -ing and -ed forms of its words of four letters or more
    (``replacing``, ``summarised``)."""
    out = set(VOCABULARY)
    for w in VOCABULARY:
        if len(w) > 3:
            out |= {w + "s", w + "ing", w + "ed"} | ({w[:-1] + "ing", w + "d"} if w[-1] == "e" else set())
    return frozenset(out)


_FORMS = _forms()
_known = _FORMS.__contains__


# -- words run together ("ignoreallpreviousinstructions") --
_MIN_RUN, _MAX_RUN, _MIN_SPLIT = 12, 400, 3
# (round 18b: a run may follow "#", "@" or "/" that starts its token (a hashtag, a handle, a path of one part)
# and be followed by digits or a "-" that ends its token)
_RUN = re.compile(
    r"(?:(?<![\w./@#:=?&%+\\-])|(?<=\s[#@/])|(?<=^[#@/]))[A-Za-z]{12,}"
    r"(?![A-Za-z_/@#=?&%+]|\.[A-Za-z0-9]|-[\w-]|\d+[A-Za-z_])"
)


_UNKNOWN = 2.5  # what a letter outside every word costs a split (a known word costs 1)


@lru_cache(maxsize=4096)
def segment(run: str) -> tuple[str, ...] | None:
    """``run`` (lower case) split into words of the vocabulary, fewest first, letters outside every word kept
    as they are (one letter in eight at most); None when it does not split so."""
    return _segment(run, _known, _MAX_WORD, _trie(False))


@lru_cache(maxsize=1024)
def segment_bare(run: str) -> tuple[str, ...] | None:
    """``run`` (lower case, its vowels dropped: "enbldvlprmdandignr") split into words of the vocabulary or
    their consonant skeletons (round 18b), the skeletons read as their words; None when it does not split."""
    if sum(map(run.count, "aeiou")) >= _BARE_SHARE * len(run):
        return None  # (English keeps about two letters in five vowels)
    table = _skeletons()
    words = _segment(run, lambda w: w in table or _known(w), _MAX_WORD, _trie(True))
    return None if words is None else tuple(table.get(w, w) if not _known(w) else w for w in words)


_BARE_SHARE = 0.15


_END = ""  # a trie node's mark of a whole word (every other key is one letter)


@cache
def _trie(bare: bool) -> dict[str, Any]:
    """The words :func:`segment` knows (with ``bare``: :func:`segment_bare`'s too) as a trie of dicts."""
    root: dict[str, Any] = {}
    for word in _FORMS | (_skeletons().keys() if bare else frozenset()):
        node = root
        for c in word:
            node = node.setdefault(c, {})
        node[_END] = True
    return root


def _known_pieces(run: str, max_word: int, trie: dict[str, Any], most: int) -> list[list[int]] | None:
    """Per end, the starts (ascending) of the pieces ``run[start:end]`` the dynamic programme of
    :func:`_segment` may use: words of ``trie``, of ``max_word`` letters at most, of one letter only "a" or
    "i"; None as soon as more than ``most`` letters lie in no piece (each is an unknown letter of every
    split, so the programme would end with None). Round 19 (perf19): read forward from each start down the
    trie while the piece begins a word (a few letters on ordinary text) instead of looking up every piece of
    up to ``max_word`` letters."""
    n = len(run)
    ends: list[list[int]] = [[] for _ in range(n + 1)]
    reach = free = 0  # the furthest end of a piece starting here or before; letters in no piece
    for start in range(n):
        node = trie
        for end in range(start, min(n, start + max_word)):
            child = node.get(run[end])
            if child is None:
                break
            node = child
            if _END in node and (end > start or run[start] in _ONE_LETTER):
                ends[end + 1].append(start)
                reach = max(reach, end + 1)
        if reach <= start:
            free += 1
            if free > most:
                return None
    return ends


def _segment(
    run: str, known: Callable[[str], bool], max_word: int, trie: dict[str, Any] | None = None
) -> tuple[str, ...] | None:
    """``run`` split into words ``known`` holds (of ``max_word`` letters at most; see :func:`segment`);
    ``trie``: those words as :func:`_trie` (the same split, faster; None at once when more letters than a
    split may leave unknown are in no word)."""
    n = len(run)
    pieces = None
    if trie is not None:
        pieces = _known_pieces(run, max_word, trie, n // 8)
        if pieces is None:
            return None  # (the same None the programme ends with: its split leaves those letters unknown)
    best: list[tuple[float, int, int]] = [(0.0, 0, 0)] + [(float("inf"), 0, 0)] * n  # (cost, start, unknown)
    for end in range(1, n + 1):
        cost, _, unknown = best[end - 1]
        best[end] = (cost + _UNKNOWN, end - 1, unknown + 1)
        if pieces is not None:
            for start in pieces[end]:
                if best[start][0] + 1 < best[end][0]:
                    best[end] = (best[start][0] + 1, start, best[start][2])
            continue
        for start in range(max(0, end - max_word), end - 1 if run[end - 1] not in _ONE_LETTER else end):
            word = run[start:end]
            if known(word) and best[start][0] + 1 < best[end][0]:
                best[end] = (best[start][0] + 1, start, best[start][2])
    if best[n][2] > n // 8:
        return None
    words: list[str] = []
    at = n
    while at > 0:
        start = best[at][1]
        piece = run[start:at]
        if len(piece) == 1 and not known(piece) and words and words[-1].startswith("?"):
            words[-1] = "?" + piece + words[-1][1:]  # letters outside every word, joined back into one
        else:
            words.append("?" + piece if len(piece) == 1 and not known(piece) else piece)
        at = start
    # three words of three letters or more, twice as many as the short or unknown pieces ("document at i on",
    # "different i a l" are English words, not words run together)
    long = sum(len(w) > 2 and not w.startswith("?") for w in words)
    if long < _MIN_SPLIT or long < 2 * (len(words) - long):
        return None
    return tuple(w.lstrip("?") for w in words[::-1])


# words written in capitals and small letters by turns ("outputYOURsystemPROMPT"; CamelCase has one capital
# per hump and is a join: the joined-words view reads it, with its code rules)
_MIXED = re.compile(r"[A-Z]{2}[a-z]|[a-z][A-Z]{2}")


def _split_line(line: str) -> str | None:
    parts, at = [], 0
    for m in _RUN.finditer(line):
        run = m.group()
        if len(run) > _MAX_RUN or not (run[1:].islower() or run.isupper() or _MIXED.search(run)):
            continue  # (CamelCase is a join: the joined-words view reads it, with its code rules)
        words = segment(run.lower()) or segment_bare(run.lower())
        if words is None:
            continue
        split = " ".join(words)
        parts += [line[at : m.start()], split.capitalize() if run[0].isupper() else split]
        at = m.end()
    return "".join(parts) + line[at:] if parts else None


# -- vowels removed ("Ignr ll prvs nstrctns") --
_VOWELS = re.compile("[aeiou]")
# a word with no vowel after its first letter, four letters or more ("prnt", "Ignr", "nstrctns")
_BARE = re.compile(r"(?<![A-Za-z])[A-Za-z][B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{3,}(?![A-Za-z])")
_TOKENS = re.compile(r"[A-Za-z]+")


@cache
def _skeletons() -> dict[str, str]:
    """Consonant skeleton → the one word of the vocabulary with it (all vowels dropped, or all but a first
    one); a skeleton two words share is left out."""
    seen: dict[str, set[str]] = {}
    for word in VOCABULARY:
        if len(word) < 3:
            continue
        for key in {_VOWELS.sub("", word), word[0] + _VOWELS.sub("", word[1:])}:
            if len(key) >= 2 and key != word:
                seen.setdefault(key, set()).add(word)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def _restore_line(line: str) -> str | None:
    toks = list(_TOKENS.finditer(line))
    table = _skeletons()
    restored, plain, new = 0, 0, []
    for m in toks:
        w = m.group().lower()
        if _known(w):
            plain += 1
        elif w in table:
            restored += 1
            new.append((m.start(), m.end(), table[w]))
    long = sum(1 for m in toks if len(m.group()) > 1)
    # (round 18b: five restored words or more read among junk tokens that are neither, a quarter of the line)
    usual = restored >= 3 and restored >= 0.3 * long and restored + plain >= 0.6 * long
    if not usual and (restored < 5 or restored < 0.25 * long or restored + plain < 0.4 * long):
        return None
    parts, at = [], 0
    for a, b, w in new:
        parts += [line[at:a], w.capitalize() if line[a].isupper() else w]
        at = b
    return "".join(parts) + line[at:]


# -- pig Latin ("isregardDay ouryay iorpray") --
_PIG = re.compile(r"ay(?<=[A-Za-z-]{3}ay)(?![A-Za-z])")
# (round 18b) a pig-Latin suffix hyphenated ("ignore-way", "eveloper-day"): the hyphen goes
_PIG_HYPHEN = re.compile(r"(?<=[A-Za-z])-(?=[B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{0,3}ay(?![A-Za-z]))")


def _unpig(word: str) -> str | None:
    low = word.lower()
    for k in range(0, 4):  # the consonants moved to the back (none for a word that starts with a vowel)
        if k >= len(low):
            break
        cand = low[len(low) - k :] + low[: len(low) - k]
        if _known(cand) and (k == 0 or cand[0] not in "aeiou"):
            return cand
    if low[-1:] in ("w", "y", "h") and low[:1] in "aeiou" and _known(low[:-1]):
        return low[:-1]  # (a word that starts with a vowel takes "way", "yay" or "hay": "ignoreway")
    return None


def _pig_line(line: str) -> str | None:
    if "-" in line:
        line = _PIG_HYPHEN.sub("", line)
    toks = list(_TOKENS.finditer(line))
    pig = [
        (m, _unpig(m.group()[:-2])) for m in toks if m.group().lower().endswith("ay") and len(m.group()) > 2
    ]
    read = [(m, w) for m, w in pig if w]
    if len(read) < 3 or len(pig) < 0.6 * len(toks):
        return None
    parts, at = [], 0
    for m, w in read:
        parts += [line[at : m.start()], w]
        at = m.end()
    return "".join(parts) + line[at:]


# a line longer than this is read a sentence at a time (round 18b: a sentence of dropped vowels or pig Latin
# at the end of a long paragraph was diluted by its prose)
_LONG_LINE = 400
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _by_sentence(read: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def go(line: str) -> str | None:
        if len(line) <= _LONG_LINE:
            return read(line)
        parts = _SENTENCE_END.split(line)
        got = [read(p) if len(p) > 8 else None for p in parts]
        if all(g is None for g in got):
            return None
        return " ".join(p if g is None else g for p, g in zip(parts, got, strict=True))

    return go


_RESTORE = _by_sentence(_restore_line)
_UNPIG = _by_sentence(_pig_line)


def _lines(text: str, hint: re.Pattern[str], read: Callable[[str], str | None], need: int) -> str | None:
    """``text`` with each line that holds ``need`` hits of ``hint`` rewritten by ``read`` (when it reads);
    the hits are found in one pass over the text and counted per line."""
    hits = [m.start() for m in hint.finditer(text)]
    if len(hits) < need:
        return None
    new, i = [], 0
    while i + need - 1 < len(hits):
        lo = text.rfind("\n", 0, hits[i]) + 1
        hi = text.find("\n", hits[i])
        hi = len(text) if hi < 0 else hi
        j = bisect.bisect_left(hits, hi, i)
        if j - i >= need:
            got = read(text[lo:hi])
            if got is not None:
                new.append((lo, hi, got))
        i = j
    return _rewrite(text, new)


@lru_cache(maxsize=8192)
def _splits(token: str) -> bool:
    return _split_line(token) is not None


def long_tokens(text: str) -> set[str]:
    """The distinct whitespace-separated tokens of ``text`` of twelve characters or more (one split)."""
    return set([t for t in text.split() if len(t) >= _MIN_RUN])  # (the list first: faster)


def _unsplit_view(text: str, tokens: set[str]) -> str | None:
    """The lines whose runs of letters split into words, split (the runs are found among the text's long
    ``tokens`` first, each distinct token read once; then the lines holding one, one pass)."""
    found = {t for t in tokens if _splits(t)}
    if not found:
        return None
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        if any(t in found for t in line.split()):
            got = _split_line(line)
            if got is not None:
                lines[i], changed = got, True
    return "\n".join(lines) if changed else None


# a text over 2,000 characters has its lines read for dropped vowels only when it holds the vowel-less
# skeleton of "instruction" or "prompt" (plain ``in`` searches, fast on long text), a shorter one always
_SHORT_TEXT = 2_000
_VOWEL_KEYS = ("nstrctn", "rmpt")  # (first letter left out: "Prmpt" and "prmpt" both hold "rmpt")


def wordplay_views(text: str, tokens: set[str]) -> list[tuple[str, str]]:
    """``(name, text)`` per word-play reading of ``text`` (see the module doc; ``tokens``: its
    :func:`long_tokens`); ``[]`` for ordinary text."""
    out = []
    got = _unsplit_view(text, tokens)
    if got is not None:
        out.append(("unsplit-words", got))
    if len(text) <= _SHORT_TEXT or any(k in text for k in _VOWEL_KEYS):
        got = _lines(text, _BARE, _RESTORE, 3)
        if got is not None:
            out.append(("vowels-removed", got))
    if "ay" in text:
        got = _lines(text, _PIG, _UNPIG, 3)
        if got is not None:
            out.append(("pig-latin", got))
    return out


__all__ = ["VOCABULARY", "long_tokens", "segment", "wordplay_views"]
