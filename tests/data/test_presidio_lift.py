"""Presidio's lifted patterns are compiled without ``{1}`` quantifiers: the same matches, a faster scan."""

from __future__ import annotations

import random
import re

import pytest

from bastion.data.presidio import _drop_single_repeats

PATTERNS = [
    r"[abcdefghjklmprstuxABCDEFGHJKLMPRSTUX]{1}[a-zA-Z]{1}\d{7}|[abcdefghjklmprstuxABCDEFGHJKLMPRSTUX]{1}9\d{7}",
    r"\{1}a{1}",  # an escaped brace is a literal
    r"[{1}]{1}",  # inside a class it is three characters
    r"[]{1}]x{1}",
    r"[^]{1}]{1}",
    r"[\]{1}]{1}a",
    r"\\{1}b",
    r"(ab){1}c{1,2}",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_matches_without_single_repeats(pattern: str) -> None:
    rewritten = _drop_single_repeats(pattern)
    assert "{1}" not in rewritten.replace(r"\{1}", "").replace("[{1}]", "").replace("]{1}]", "")
    rng = random.Random(pattern)
    texts = ["".join(rng.choice("ab{1}]^\\xcZ 9") for _ in range(40)) for _ in range(400)]
    texts += ["a{1}b", "{1}", "]", "AB1234567", "x9 1234567", "\\b", "ababcc"]
    for flags in (0, re.IGNORECASE):
        a, b = re.compile(pattern, flags), re.compile(rewritten, flags)
        for t in texts:
            assert [m.span() for m in a.finditer(t)] == [m.span() for m in b.finditer(t)], (pattern, t)
