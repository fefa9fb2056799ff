"""Hidden readings of a text, composed (issue 16, round 17b).

:mod:`bastion.guard._views` reads one rewrite at a time. The cold review of round 17 (attack17z) passed 18
of 18 injections with two rewrites at once (look-alike letters or accents written backwards, CamelCase written
backwards, upside-down snake_case), with the rewrites applied before letter-joining or leetspeak (spaced
letters written backwards, leetspeak written backwards) and with one word or one letter per line.
:func:`readings` therefore reads:

1. the text as searched for encoded spans (before letter-joining) and as the detector scores it (after
   letter-joining and leetspeak folding), each through :func:`bastion.guard._views.views`;
2. unscored first steps: look-alike letters and accents folded in every word, leetspeak read as letters in
   long joins (``Ign0r3_all_pr3vi0us``), and runs of six or more lines of one word or one letter joined into
   one line; the joined run is also a reading of its own
   when it reads as English;
3. every first-step text and every reading of step 1 read once more through the views (the second reading of
   a reading: upside-down snake_case is read upside down, then split).

Every reading still has to read as English (the views' tests), so ordinary text is left alone, and each
step is a bounded number of linear passes over the text.
"""

from __future__ import annotations

import re

from bastion.guard import _once, _views

_FOLD = _views._LOOKALIKE | _views._UNACCENT
_FOLD_RE = re.compile("[" + "".join(sorted(chr(c) for c in _FOLD)) + "]+")
_MIN_RUN = 6  # lines of one word or one letter in a run before it is read as one line
_SHORT_CHARS = 24


# a join (snake_case, kebab-case or CamelCase) with leetspeak digits in it: "Ign0r3_all_pr3vi0us_…" (the
# normaliser's leetspeak fold leaves words over 24 characters alone: ids and hashes). The search starts at a
# leetspeak digit between two letters (a rare character class: fast on long text), then reads its token
_LEET_AT = re.compile(r"[013457$@](?<=[A-Za-z][013457$@])(?=[A-Za-z])")
_TOKEN = re.compile(r"[\w$@-]+")
_JOIN_MARK = re.compile(r"[_-]|[a-z0-9][A-Z]")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a"})


def _leet_joins(text: str) -> str | None:
    """``text`` with the leetspeak of its long joins read as letters (None when there is none)."""
    parts, at = [], 0
    for m in _LEET_AT.finditer(text):
        if m.start() < at:
            continue
        lo = m.start()
        while lo > at and (text[lo - 1].isalnum() or text[lo - 1] in "_-$@"):
            lo -= 1
        token = _TOKEN.match(text, lo)
        if token is None:  # pragma: no cover (the digit itself is a token character)
            continue
        word = token.group()
        if (
            12 <= len(word) <= 300
            and _JOIN_MARK.search(word)
            and 3 * sum(c.isdigit() for c in word) <= len(word)
        ):
            parts += [text[at:lo], word.translate(_LEET)]
        else:
            parts.append(text[at : token.end()])
        at = token.end()
    if not parts:
        return None
    folded = "".join(parts) + text[at:]
    return folded if folded != text else None


def _fold(m: re.Match[str]) -> str:
    return m.group().translate(_FOLD)


def _folded(text: str) -> str | None:
    """``text`` with look-alike letters and accents folded everywhere, when the lines that changed have a
    reading of their own once folded (None otherwise: the fold alone is not a reading)."""
    if text.isascii():
        return None
    spans = _views._lines_at(text, [m.start() for m in _FOLD_RE.finditer(text)])
    if not spans or not _views.views(_FOLD_RE.sub(_fold, "\n".join(text[a:b] for a, b in spans))):
        return None
    return _FOLD_RE.sub(_fold, text)


# one word of letters (with up to two punctuation marks either side or inside: "˙pɹoʍ", "blue,", "s'resu")
_ONE_WORD = re.compile(r"\s*[^\w\s]{0,2}[^\W\d_]{1,24}(?:[^\w\s]{1,2}[^\W\d_]{1,24}){0,2}[^\w\s]{0,2}\s*")


def _short(line: str) -> bool:
    """One word of letters or one character, or an empty line (code lines such as ``free(x)`` are not)."""
    return len(line) <= 1 or (len(line) <= _SHORT_CHARS + 9 and _ONE_WORD.fullmatch(line) is not None)


def lines_joined(text: str) -> str | None:
    """``text`` with each run of six or more lines of one word or letter joined into one line: single
    characters joined as they are (a space on its own line is the word break), words by spaces; None when
    there is none."""
    if text.count("\n") < _MIN_RUN - 1:
        return None
    lines = text.split("\n")
    if bytes([1]) * _MIN_RUN not in bytes(map(_short, lines)):
        return None  # no six short lines in a row (a cheap pass before the line-by-line one)
    out: list[str] = []
    run: list[str] = []
    changed = False

    def flush() -> None:
        nonlocal changed
        if sum(bool(x.strip()) for x in run) >= _MIN_RUN:
            chars = all(len(x) <= 1 for x in run)
            out.append(
                "".join(x or " " for x in run) if chars else " ".join(x.strip() for x in run if x.strip())
            )
            changed = True
        else:
            out.extend(run)
        run.clear()

    for line in lines:
        if _short(line):
            run.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out) if changed else None


def _changed_lines(raw: str, text: str) -> str | None:
    """The lines that letter-joining or leetspeak folding changed (they never join lines), as one text; None
    when none changed."""
    if text == raw:
        return None
    old, new = raw.split("\n"), text.split("\n")
    if len(old) != len(new):  # pragma: no cover (the folds keep line breaks)
        return text
    return "\n".join(b for a, b in zip(old, new, strict=True) if a != b) or None


def readings(raw: str, text: str) -> list[tuple[str, str]]:
    """``(name, reading)`` per hidden reading of ``raw`` (the text before letter-joining) or ``text`` (after
    it), composed as the module doc says; ``[]`` for ordinary text."""
    found: dict[str, str] = {}

    def keep(name: str, view: str) -> None:
        if view and view not in found and view != raw and view != text:
            found[view] = name

    # ``text``'s own lines are read (whole) only when the lines the folds changed have a reading of their own
    changed = _changed_lines(raw, text)
    first = _views.views(raw)
    if changed is not None and (_views.views(changed) or _folded(changed) is not None):
        first += _views.views(text)
    first += _once.once_views(raw)  # round 18: read once, then through the views below
    for name, view in first:
        keep(name, view)
    steps: list[tuple[str, str]] = []
    for src in (raw, text) if changed is not None and _folded(changed) is not None else (raw,):
        folded = _folded(src)
        if folded is not None:
            steps.append(("folded", folded))
    unleet = _leet_joins(raw)  # (``text`` has the same long words: the normaliser leaves them alone)
    if unleet is not None:
        steps.append(("leet", unleet))
    joined = lines_joined(raw)
    if joined is not None:
        steps.append(("lines-joined", joined))
        if _views._english(joined):
            keep("lines-joined", joined)
    for name, src in steps + first:
        for inner, view in _views.views(src):
            keep(f"{name}>{inner}", view)
    return [(name, view) for view, name in found.items()]


__all__ = ["lines_joined", "readings"]
