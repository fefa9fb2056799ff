"""The common English words a hidden reading must hit to count as English (issue 16, rounds 17-18).

Moved out of :mod:`bastion.guard._views` in round 18 (the views, the word-play readings of
:mod:`bastion.guard._wordplay` and the script fold of :mod:`bastion.guard._skeleton` share it).
"""

from __future__ import annotations

import re

# common English words (function words first, then frequent verbs, nouns and adjectives, and the words
# instructions to a model are made of); a reading is "English" when enough of its words are here
_ENGLISH_WORDS = """
    a about above after again against all also always am an and any anything are as ask at away back be
    because been before being below between both but by can cannot could did do does doing done down
    during each either else even every everything few for from further had has have having he her here
    hers him his how however i if in into is it its itself just let like may me might more most must my
    myself never no nor not now of off on once only or other our ours out over own same she should since
    so some something still such than that the their them then there these they this those through to
    too under until up upon us very was we were what when where which while who whom whose why will with
    within without would yes yet you your yours yourself accept access account act add admin again agent
    allow answer apply assistant attention available become begin below best break bypass call change
    character chat check clear code come command complete confidential contain content context continue
    control copy create credentials current data delete describe detail developer different directions
    disable disregard display do document email enable end enter error every exactly example explain
    file filter find first follow following forget format forward free full get give go good great
    guidelines help hidden history ignore image important include information initial input instead
    instructions keep key know last leave limit line link list log login look make many mark message
    mode model more name need new next note now number old open operator order original output override
    page part pass password people permission person place play please policy post pretend previous
    print prior private prompt provide question read real really remember remove repeat reply report
    request respond response restrictions result return reveal right role rules run safe safety say
    secret secure see send server set settings show site start state stay step stop summary system take
    task tell text thing think time today token tool true trust try turn unless update use user value
    verbatim visit want warning way well word work write
"""
ENGLISH = frozenset(_ENGLISH_WORDS.split())
# the function words (the list's first block, up to "yourself"): a sentence carries them, a record's fields
# rarely do; those a table cell holds as a value (yes, no, on, off, all, none ...) left out
FUNCTION = frozenset(_ENGLISH_WORDS.split()[: _ENGLISH_WORDS.split().index("accept")]) - frozenset(
    ("a", "i", "yes", "no", "on", "off", "all", "any", "both", "none", "each", "every", "either")
)
_MIN_HITS = 2  # English words a reading must hit (and at least a share of the words it reads)
_WORDS = re.compile(r"[^\W\d_]+")


def english_hits(words: list[str]) -> int:
    """How many of ``words`` are common English words (or their plural)."""
    return sum((w := x.lower()) in ENGLISH or (w[-1:] == "s" and w[:-1] in ENGLISH) for x in words)


def english(text: str, share: float = 0.3) -> int:
    """The English hits of ``text``'s words when they reach ``_MIN_HITS`` and ``share`` of its words of two or
    more letters, else 0."""
    words = [w for w in _WORDS.findall(text) if len(w) > 1]
    hits = english_hits(words)
    return hits if hits >= _MIN_HITS and hits >= share * len(words) else 0


__all__ = ["ENGLISH", "FUNCTION", "english_hits"]
