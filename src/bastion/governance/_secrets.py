"""Patterns of credentials that must never sit in code, notebook outputs or deployment manifests.

Each pattern names the kind of credential; callers report the kind and the place, never the value.
"""

from __future__ import annotations

import re

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("live API secret key (sk-live/sk_live)", re.compile(r"\bsk[-_]live[-_][A-Za-z0-9_-]{12,}")),
    ("OpenAI-style API key (sk-…)", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("private key block", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----")),
)


def find_secrets(text: str) -> list[tuple[int, str]]:
    """(1-based line, kind) of every credential-shaped string in ``text``."""
    out: list[tuple[int, str]] = []
    seen: set[int] = set()
    for kind, pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            if m.start() in seen:
                continue
            seen.add(m.start())
            out.append((text.count("\n", 0, m.start()) + 1, kind))
    return sorted(out)


def looks_secret(text: str) -> str | None:
    """The kind of the first credential in ``text``, if any."""
    found = find_secrets(text)
    return found[0][1] if found else None
