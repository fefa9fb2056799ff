"""E-mail addresses (RFC 5322 dot-atom local parts, a domain with a 2-24 letter TLD)."""

from __future__ import annotations

import re

from bastion.data import entities as E
from bastion.data.detectors.interface import Detector, Family

EMAIL = Detector(
    E.EMAIL,
    re.compile(
        r"[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
        r"[A-Za-z]{2,24}(?![A-Za-z0-9-])"
    ),
    0.95,
    prefilter="@",
)

# "name [at] mail [dot] ru", "name(at)mail(dot)com", "name {AT} mail . com" (issue 21 F6): found at the
# bracketed "at", then the local part before it and a domain of bracketed dots or plain dots after it.
_AT = re.compile(r"[\[({<][ ]*(?i:at)[ ]*[\])}>]")
_LOCAL_BEFORE = re.compile(r"(?:(?<=[^A-Za-z0-9._%+-])|^)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}[ ]*$")
_DOMAIN_AFTER = re.compile(
    r"[ ]*[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:[ ]*(?:[\[({<][ ]*(?i:dot)[ ]*[\])}>]|\.)[ ]*[A-Za-z0-9-]{1,63})*"
    r"[ ]*(?:[\[({<][ ]*(?i:dot)[ ]*[\])}>]|\.)[ ]*[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def _v_obfuscated(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.string
    lo = max(0, m.start() - 64, text.rfind("\x00", 0, m.start()) + 1)
    local = _LOCAL_BEFORE.search(text, lo, m.start())
    domain = _DOMAIN_AFTER.match(text, m.end())
    if local is None or domain is None:
        return None
    return local.start(), domain.end()


OBFUSCATED_EMAIL = Detector(E.EMAIL, _AT, 0.85, _v_obfuscated)

FAMILY = Family(
    name="email",
    entities=frozenset({E.EMAIL}),
    members=(EMAIL, OBFUSCATED_EMAIL),
    positives=(
        ("write to jane.doe+shop@example.co.uk today", "jane.doe+shop@example.co.uk"),
        ("anna_k@mail.example.de", "anna_k@mail.example.de"),
        ("reach me: olek.w [at] mail [dot] ru thanks", "olek.w [at] mail [dot] ru"),
        ("jan(at)example(dot)co(dot)uk", "jan(at)example(dot)co(dot)uk"),
    ),
    negatives=(
        "meet @ noon",
        "user@localhost",
        "price 3@4.5",
        "@handle on social media",
        "meet [at] noon",
        "3 items [at] 4.50 each",
    ),
)

__all__ = ["EMAIL", "FAMILY", "OBFUSCATED_EMAIL"]
