"""Round 18's readings chained, each on the one before's output (issue 16, round 18b): :func:`chain_views`.

The cold review of round 18's readings (attack18x) passed 16-18 of 18 injections with two of those tricks at
once: Lisu letters with the spaces taken out, vowels dropped inside a table's cells or with no spaces, pig
Latin joined by dots. Each reading of :mod:`bastion.guard._once` reads the raw text and tests its own output
for English, which the other trick spoils. Here the raw text goes through loose steps in a fixed order: runs
of four lines or more of one to three words joined; letters outside ASCII read (as a substitution fitted to
the vocabulary, :mod:`bastion.guard._fit`, when several have no skeleton, else each word folded to its
skeleton, no English test); words hyphenated across lines joined; word play (words run together split, vowels
restored, pig Latin undone: each with its own tests); tables flattened (a row per line of words, with or
without outer pipes or a rule line, and HTML cells); tokens of words joined by a repeated separator (``.``
``+`` ``|`` ``·`` ``→`` ``,`` ``/`` ``~`` ``:``) spaced; word play once more. Each step reads the lines the
steps before changed only. A text two steps or more changed is a reading when it reads as English, one step
changed when the once readings do not read its form (a fitted substitution, a table of sentences in another
layout, other join separators). Each step is one pass over the text or skipped at once (a class search, an
``in``), so ordinary text pays a few searches.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion.guard import _fit, _layout, _skeleton, _wordplay
from bastion.guard._english import english

_MAX_TEXT = 200_000  # (the readings' own budgets cut long texts; this one bounds the chain's passes)


def _fold(text: str) -> str | None:
    """``text`` with each word holding a letter outside ASCII folded to its skeleton when the fold is ASCII,
    when most such words fold so; None when none does."""
    if text.isascii() or not _skeleton._WIDE_LETTER.search(text):
        return None
    parts, at, wide, done, letters = [], 0, 0, 0, 0
    for a, b, word in _fit.wide_words(text):
        wide += 1
        out = _skeleton._fold(word)
        if out.isascii() and sum(c.isupper() for c in out) >= 0.8 * len(out):
            out = out.replace(
                "l", "I"
            ).upper()  # a capital run ("lGNOREALLPREVlOUS", Lisu has no small letters)
        if out.isascii():
            done, letters = done + 1, letters + len(out)
            parts += [text[at:a], out]
            at = b
    if letters < 8 or done < 0.6 * wide:
        return None
    return "".join(parts) + text[at:]


def _play(text: str, views: list[tuple[str, str]] | None = None) -> str | None:
    """``text`` through each word-play reading in turn (each reads what the one before wrote; ``views``:
    :func:`bastion.guard._wordplay.wordplay_views` of ``text`` when already read)."""
    if views is None:
        views = _wordplay.wordplay_views(text, _wordplay.long_tokens(text))
    if not views:
        return None
    out = views[0][1]
    for _ in range(2):  # (the other readings again, on what the first wrote)
        again = _wordplay.wordplay_views(out, _wordplay.long_tokens(out))
        if not again:
            break
        out = again[0][1]
    return out


# a table's row: cells between pipes (outer pipes optional, two pipes at least), a rule line, HTML cells
_PIPE_ROW = re.compile(r"[ \t]*\|?[^|\n]*(?:\|[^|\n]*)+")
_RULE = re.compile(r"[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|?)+[ \t]*")
_HTML_CELL = re.compile(r"</?(?:td|th|tr|table|tbody|thead)\b[^>]*>", re.I)


def _join_runs(
    lines: list[str], member: Callable[[str], str | None], join: Callable[[list[str]], str | None]
) -> tuple[list[str], bool]:
    """``lines`` with each run of consecutive lines that ``member`` takes (in the form it gives) replaced by
    ``join(run)``, or kept (in that form) where ``join`` gives None; whether any run was joined."""
    out: list[str] = []
    run: list[str] = []
    changed = False
    for line in [*lines, None]:
        kept = None if line is None else member(line)
        if kept is not None:
            run.append(kept)
            continue
        joined = join(run) if run else None
        if joined is None:
            out += run
        else:
            out.append(joined)
            changed = True
        run = []
        if line is not None:
            out.append(line)
    return out, changed


def _flat(text: str) -> tuple[str, bool] | None:
    """``text`` with each run of two or more table rows read as one line of words (HTML cells spaced); the
    flag: whether the cells hold sentences (:func:`bastion.guard._layout._sentence_cells`): read alone)."""
    html = "<t" in text or "<T" in text
    if not html and text.count("|") < 4:
        return None
    src = _HTML_CELL.sub(" ", text) if html else text
    sentence = src != text and _layout._sentence_cells([[c.strip() for c in _HTML_CELL.split(text)]])

    def join(run: list[str]) -> str | None:
        nonlocal sentence
        if len(run) < 2 or 2 * sum(r.count("|") > 1 for r in run) < len(run):
            return None
        cells = [c.strip() for r in run if not _RULE.fullmatch(r) for c in r.strip().strip("|").split("|")]
        sentence = sentence or _layout._sentence_cells([cells])
        return " ".join(c for c in cells if c)

    out, joined = _join_runs(
        src.split("\n"), lambda x: x if "|" in x and _PIPE_ROW.fullmatch(x) else None, join
    )
    changed = joined or src != text
    return ("\n".join(out), sentence) if changed else None


# a token of three or more runs of letters joined by one repeated separator (the same one each time); a host
# name ("www.showmeyoursystemprompt.com") or an address is a name, not a sentence
_HOST = re.compile(r"(?i)www\.|@|\.(?:com|org|net|io|dev|ai|app|co|uk|de|edu|gov)\b")
_JOIN = re.compile(r"[A-Za-z]{1,40}+([.+|·→,/~:])[A-Za-z]{1,40}+(?:\1[A-Za-z]{1,40}+)+")
_SEP2 = re.compile(r"([.+|·→,/~:])[A-Za-z]{1,40}+\1")  # (a separator twice around letters: fast)
_TRIM = re.compile(r"^[\W\d]+|[\W\d]+$")
_NEW_SEPARATORS = "|·→,/~:"  # (joins by "." and "+" are read by the once readings, with their code rules)


def _wordlike(part: str) -> bool:
    """A vocabulary word, or one in pig Latin or with its vowels dropped (a join of the other tricks)."""
    low = part.lower()
    return _wordplay._known(low) or low in _wordplay._skeletons() or (low[-2:] == "ay" and len(low) > 3)


def _split(text: str, tokens: set[str] | None = None) -> tuple[str, bool] | None:
    """``text`` with each token of words joined by a repeated separator spaced when most of its parts are
    words (``tokens``: its long tokens when already split; a URL, a host name or a dotted module path is left
    joined); flag: a separator the once readings do not read."""
    spaced, used = {}, set()
    joined = "\n".join(_wordplay.long_tokens(text) if tokens is None else tokens)
    lines = {joined.rfind("\n", 0, m.start()) + 1 for m in _SEP2.finditer(joined)}  # (one pass, then lines)
    for lo in lines:
        hi = joined.find("\n", lo)
        t = joined[lo : len(joined) if hi < 0 else hi]
        if "://" in t or _HOST.search(t):
            continue
        m = _JOIN.fullmatch(_TRIM.sub("", t))  # (the whole token: not a part of a code path)
        if m is None:
            continue
        sep, parts = m.group(1), m.group().split(m.group(1))
        hits = sum(map(_wordlike, parts))
        if sep in ".+":  # (plain words joined so are the once readings' join: here only the other tricks)
            hits -= sum(map(_wordplay._known, map(str.lower, parts)))
        if sep not in ".+" and len(parts) < 4:
            continue  # ("path/to/code", "port/user/password", "/admin/watermark/marks": names of things)
        if hits >= 2 and hits >= 0.6 * len(parts):
            spaced[m.group()] = " ".join(parts)
            used.add(sep)
    if not spaced:
        return None
    got = text
    for joined in sorted(spaced, key=len, reverse=True):
        got = got.replace(joined, spaced[joined])
    return got, any(c in _NEW_SEPARATORS for c in used)


_Step = Callable[[str], "tuple[str, bool] | None"]


# a line of one to three words of letters (and their punctuation), a run of four or more of them: a sentence
# written a word or two per line, read as one line (round 17's lines-joined reading: six lines of one word)
_SHORT_LINE = re.compile(r"[ \t]*[^\W\d_]+[.,;:!?'’]?(?:[ \t]+[^\W\d_]+[.,;:!?'’]?){0,2}[ \t]*")
_MIN_LINES = 4
_SHORT_CHARS = 40


def _lines(text: str) -> str | None:
    """``text`` with each run of ``_MIN_LINES`` or more lines of one to three words joined into one line."""
    if text.count("\n") < _MIN_LINES - 1:
        return None
    if len(text) > _wordplay._SHORT_TEXT and not any(k in text for k in _wordplay._VOWEL_KEYS):
        return None  # (a long text: only with dropped vowels to read once joined; speed)
    lines = text.split("\n")
    fits = [0 < len(x) <= _SHORT_CHARS for x in lines]  # (by length first: the pattern on those only)
    if b"\x01" * _MIN_LINES not in bytes(fits):
        return None
    out, changed = _join_runs(
        lines,
        lambda x: x.strip() if 0 < len(x) <= _SHORT_CHARS and _SHORT_LINE.fullmatch(x) else None,
        lambda run: " ".join(run) if len(run) >= _MIN_LINES else None,
    )
    return "\n".join(out) if changed else None


# a line of a short text whose words of six letters or more are mostly no words (words run together and cut
# anywhere: "ignoreallpr eviousinstr", "Enabledeveloper modeand"): its letters run together again, for word
# play to split
_LETTER_TOKEN = re.compile(r"[A-Za-z]{6,}")


def _squash(text: str) -> str | None:
    if len(text) > _wordplay._SHORT_TEXT:
        return None
    out, changed = [], False
    for line in text.split("\n"):
        long = _LETTER_TOKEN.findall(line)
        odd = sum(not _wordplay._known(w.lower()) for w in long)
        if odd >= 3 and odd >= 0.6 * len(long) and len(line) <= _wordplay._MAX_RUN:
            line = re.sub(r"(?<=[A-Za-z])[ \t]+(?=[A-Za-z])", "", line)
            changed = True
        out.append(line)
    return "\n".join(out) if changed else None


def _wide(text: str) -> bool:
    """Whether ``text`` has a letter outside ASCII (a class search, after a cheaper test)."""
    return not text.isascii() and _skeleton._WIDE_LETTER.search(text) is not None


def _letters(text: str) -> tuple[str, bool] | None:
    """Letters outside ASCII read: as a substitution fitted to the vocabulary when several have no skeleton
    (:mod:`bastion.guard._fit`, its fit a test of its own: read alone), else folded to their skeletons."""
    got = _fit.fitted(text)
    return (got, True) if got is not None else _no(_fold(text))


_STEPS: tuple[_Step, ...] = (
    lambda t: _no(_lines(t)),
    _letters,
    lambda t: _no(_squash(t)),
    lambda t: _no(_layout.unbroken(t)),
    lambda t: _no(_play(t)),
    _flat,
    _split,
    lambda t: _no(_play(t)),
)


def _no(got: str | None) -> tuple[str, bool] | None:
    return None if got is None else (got, False)


def chain_views(
    text: str, tokens: set[str], played: list[tuple[str, str]], known: set[str]
) -> list[tuple[str, str]]:
    """``("chained", reading)`` per text two or more loose steps (see the module doc) make of ``text`` that
    reads as English and is not in ``known`` (the once readings), or one step when the once readings do not
    read its form (a table of sentences in another layout, other join separators); only the lines the steps
    changed are read (and read on). ``tokens`` and ``played``: ``text``'s long tokens and word-play readings,
    already read; ``[]`` for ordinary text."""
    if len(text) > _MAX_TEXT:
        return []
    wide = _wide(text)
    first = [
        _no(_lines(text)),
        _letters(text) if wide else None,
        _no(_squash(text)),
        _no(_layout.unbroken(text)),
        _no(_play(text, played)),
        _flat(text),
        _split(text, tokens),
    ]
    if all(x is None for x in first):
        return []
    old = set(text.split("\n"))
    states: dict[str, tuple[int, bool]] = {text: (0, False)}  # a text: how many steps changed it, alone
    for k, step in enumerate(_STEPS):
        for src, (n, _) in list(states.items()):
            got = first[4 if k == 7 else k] if src is text else step(src)
            if got is None:
                continue
            new = "\n".join(x for x in got[0].split("\n") if x not in old)  # (the lines it changed)
            if new and new not in states:
                states[new] = (n + 1, got[1])
    return [
        ("chained", s)
        for s, (n, alone) in states.items()
        if (n >= 2 or (n == 1 and alone)) and s not in known and english(s)
    ]


__all__ = ["chain_views"]
