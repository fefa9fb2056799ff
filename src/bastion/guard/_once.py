"""The readings of round 18 that are read once per text (issue 16): :func:`once_views`.

The views of :mod:`bastion.guard._views` are read several times per text (the text before and after
letter-joining, and readings of readings); the readings added in round 18 are read once, on the text before
letter-joining, and their results then go through the views like any other reading
(:func:`bastion.guard._readings.readings`): look-alikes of any script (:mod:`bastion.guard._skeleton`),
short joins side by side and joins by ``.`` / ``+`` (:func:`bastion.guard._views.joined_view` on the lines
of the long tokens shaped as joins), snake_case sentences written as code (read alone), words run together,
vowels dropped and pig Latin (:mod:`bastion.guard._wordplay`), table cells and hyphenated line breaks
(:mod:`bastion.guard._layout`). One split of the text finds the long tokens most of them start from.
"""

from __future__ import annotations

import re

from bastion.guard import _chain, _layout, _skeleton, _views, _wordplay

# a long token shaped as a join of three or more words (by _ . + or CamelCase; hyphenated words are English,
# "state-of-the-art") finds its line for the joined-words reading: joins by "." or "+", and short joins (three
# words, three humps) side by side that add up to the views' five parts, each of three words or more
_TRIM = re.compile(r"^[\W\d]+|[\W\d]+$")
_JOIN_TOKEN = re.compile(
    r"[\W\d]{0,3}+(?:[A-Za-z]{1,40}+(?:[,;:!?]?[_.+][A-Za-z]{1,40}+){2,}+|(?:[A-Z][a-z]{1,40}+){3,}+)[\W\d]{0,3}+"
)


# a snake_case sentence of five words or more written as code: in backticks or quotes, before "()" or ": " (a
# key), or a kebab-case one as a command-line option ("--ignore-all-previous-instructions"). The join view
# leaves it (it is code-shaped there); it is read here alone, one line per join, so that it adds a flag only
# when its words alone score as an attack ("`ignore_all_previous_instructions`")
_CODE_SNAKE = re.compile(
    r"[`'\"]?+([A-Za-z]{1,40}+(?:_[A-Za-z]{1,40}+){4,}+)(?:[`'\"]|\(\)|:)?+[.,;!?]?+"
    r"|--([A-Za-z]{1,40}+(?:-[A-Za-z]{1,40}+){4,}+)(?:=\S*+)?+"  # a command-line option
)
_CODE_PREFIXES = frozenset(
    ("test", "tests", "it", "should", "must", "get", "set", "is", "has", "assert", "check")
)
_CODE_LINE = re.compile(r"[=;{}]|\b(?:def|class|import|return|const|let|var|function|fn)\b")


def _code_snakes(text: str, tokens: set[str]) -> str | None:
    """The snake_case sentences written as code (see above), split, one per line; None when there is none
    (a token inside a call with arguments, a member or an assignment, or on a line of code, is code)."""
    found = []
    for t in tokens:
        m = _CODE_SNAKE.fullmatch(t)
        if m is None:
            continue
        words = m.group(1).split("_") if m.group(1) else m.group(2).split("-")
        if words[0].lower() in _CODE_PREFIXES:
            continue  # a test or an accessor named as a sentence: "test_model_must_refuse_to_reveal_it()"
        if _views.english_hits(words) < 0.6 * len(words):
            continue
        at = text.find(t)
        lo = text.rfind("\n", 0, at) + 1
        hi = text.find("\n", at)
        line = text[lo : len(text) if hi < 0 else hi]
        if not _CODE_LINE.search(line):
            found.append(" ".join(words))
    return "\n".join(sorted(found)) or None


def once_views(text: str) -> list[tuple[str, str]]:
    """The readings of round 18 read once per text (not again in readings of readings): short joins side by
    side, words run together, vowels dropped, pig Latin, table cells and hyphenated line breaks."""
    tokens = _wordplay.long_tokens(text)
    joins = [
        t
        for t in tokens
        if _JOIN_TOKEN.fullmatch(t)
        and _views.english_hits(_views._HUMP_ANY.split(_TRIM.sub("", t))) >= _views._MIN_HITS
    ]
    starts = sorted(at for t in joins for at in _occurrences(text, t)) if joins else []
    view = _views.joined_view(text, starts, 3) if starts else None
    out = [("joined-words", view)] if view is not None else []
    snakes = _code_snakes(text, tokens) if "_" in text or "--" in text else None
    if snakes is not None:
        out.append(("code-joined-words", snakes))
    view = _skeleton.skeleton_view(text)  # any script's look-alikes (UTS #39 skeleton)
    if view is not None:
        out.append(("skeleton", view))
    played = _wordplay.wordplay_views(text, tokens)
    out += played + _layout.layout_views(text)
    return out + _chain.chain_views(text, tokens, played, {v for _, v in out})


def _occurrences(text: str, token: str) -> list[int]:
    out, at = [], text.find(token)
    while at >= 0:
        out.append(at)
        at = text.find(token, at + len(token))
    return out


__all__ = ["once_views"]
