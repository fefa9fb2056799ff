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

FAMILY = Family(
    name="email",
    entities=frozenset({E.EMAIL}),
    members=(EMAIL,),
    positives=(
        ("write to jane.doe+shop@example.co.uk today", "jane.doe+shop@example.co.uk"),
        ("anna_k@mail.example.de", "anna_k@mail.example.de"),
    ),
    negatives=("meet @ noon", "user@localhost", "price 3@4.5", "@handle on social media"),
)

__all__ = ["EMAIL", "FAMILY"]
