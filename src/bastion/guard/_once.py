"""The readings of round 18 that are read once per text (issue 16): :func:`once_views`.

The views of :mod:`bastion.guard._views` are read several times per text (the text before and after
letter-joining, and readings of readings); the readings added in round 18 are read once, on the text before
letter-joining, and their results then go through the views like any other reading
(:func:`bastion.guard._readings.readings`): short joins side by side and joins by ``.`` / ``+``
(:func:`bastion.guard._views.joined_view` on the lines of the long tokens shaped as joins), words run
together, vowels dropped and pig Latin (:mod:`bastion.guard._wordplay`), table cells and hyphenated line
breaks (:mod:`bastion.guard._layout`). One split of the text finds the long tokens all of them start from.
"""

from __future__ import annotations

import re

from bastion.guard import _layout, _views, _wordplay

# a long token shaped as a join of three or more words (by _ . + or CamelCase; hyphenated words are English,
# "state-of-the-art") finds its line for the joined-words reading: joins by "." or "+", and short joins (three
# words, three humps) side by side that add up to the views' five parts, each of three words or more
_TRIM = re.compile(r"^[\W\d]+|[\W\d]+$")
_JOIN_TOKEN = re.compile(
    r"[\W\d]{0,3}+(?:[A-Za-z]{1,40}+(?:[,;:!?]?[_.+][A-Za-z]{1,40}+){2,}+|(?:[A-Z][a-z]{1,40}+){3,}+)[\W\d]{0,3}+"
)


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
    return out + _wordplay.wordplay_views(text, tokens) + _layout.layout_views(text)


def _occurrences(text: str, token: str) -> list[int]:
    out, at = [], text.find(token)
    while at >= 0:
        out.append(at)
        at = text.find(token, at + len(token))
    return out


__all__ = ["once_views"]
