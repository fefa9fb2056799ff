"""Secrets: vendor key formats, ``key=value`` secrets by key name, and high-entropy tokens."""

from __future__ import annotations

import math
import re
from collections import Counter

from bastion.data import entities as E
from bastion.data._national import keywords
from bastion.data.detectors._common import PROTECTED_PREFIXES, TOKEN_CHARS, bounded, preceded_by, whole
from bastion.data.detectors.interface import Detector, Family


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _v_entropy(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if preceded_by(m, TOKEN_CHARS) or text.startswith(PROTECTED_PREFIXES):
        return None
    has_digit = any(map(str.isdigit, text))
    has_upper = any(map(str.isupper, text))
    has_lower = any(map(str.islower, text))
    if not (has_digit and has_upper and has_lower) or _entropy(text) < 4.2:
        return None
    return whole(m)


_SECRET_KEY = re.compile(r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|access[_-]?key)[\"']?[ ]*$")


def _v_kv_secret(m: re.Match[str]) -> tuple[int, int] | None:
    if m.group(1).startswith(PROTECTED_PREFIXES):
        return None
    if not _SECRET_KEY.search(m.string, max(0, m.start() - 24), m.start()):
        return None
    return m.start(1), m.end(1)


_PROSE_KEYWORDS = keywords(
    "password|passwort|passcode|passphrase|pwd|pin code|token|secret|api key|API key|apikey|access key|"
    "mot de passe|contraseña|contrasena|senha|wachtwoord|hasło|haslo"
).pattern
# "the password was reset to Tr0ub4dor&35C", "token for the sandbox is hunter2!vDbI", "Passwort ist …":
# the value after the keyword and a verb or a colon, when it mixes letters with digits or symbols.
_PROSE_SECRET = re.compile(
    r"(?:" + _PROSE_KEYWORDS + r")[^\x00\n]{0,40}?(?:\b(?:is|was|to|now|ist|est|es|é|è|wordt)\b|[:=])[ ]*"
    r"[\"'`“‘]?((?=[^\s\x00]*[A-Za-z])(?=[^\s\x00]*[\d!#$%&*+/?@^_~])[^\s\x00\"'`”’]{6,64})"
)


def _v_prose_secret(m: re.Match[str]) -> tuple[int, int] | None:
    value = m.group(1)
    start = m.start(1)
    end = m.end(1)
    while end > start and m.string[end - 1] in ".,;:)":
        end -= 1  # sentence punctuation after the value
    if end - start < 6 or m.string[start:end].startswith(PROTECTED_PREFIXES) or value.isdigit():
        return None
    return start, end


# Credentials in a URL / connection string: ``scheme://[user]:PASSWORD@host`` (mysql, postgresql, redis,
# amqp, mongodb, https …), whatever the host (a name, an IP, ``[v6]``) and the password's characters; the
# password is the span (issue 21 F-DSN).
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@\x00]{0,64}:([^\s/@\x00]{1,256})@")


def _v_url_credentials(m: re.Match[str]) -> tuple[int, int] | None:
    if m.group(1).startswith(PROTECTED_PREFIXES) or set(m.group(1)) <= set("*x"):
        return None  # already protected, or masked
    return m.start(1), m.end(1)


# "pasted their key BHpmi45KeoOljw": a secret word followed directly by a token-shaped value (upper and
# lower case letters and digits, ten characters or more).
_KEYWORD_TOKEN = re.compile(
    r"(?:" + keywords("key|password|passwort|pwd|token|secret|apikey|api key").pattern + r")[ ]+"
    r"((?=[^\s\x00]*\d)(?=[^\s\x00]*[a-z])(?=[^\s\x00]*[A-Z])[A-Za-z0-9_!#$%&*+/=?@^~-]{10,64})(?![^\s\x00.,;:)])"
)


def _v_keyword_token(m: re.Match[str]) -> tuple[int, int] | None:
    before = m.string[m.start() - 1] if m.start() else " "
    if before.isalnum() or m.group(1).startswith(PROTECTED_PREFIXES):
        return None
    return m.start(1), m.end(1)


VENDOR_KEYS = Detector(
    E.SECRET,
    re.compile(
        r"(?:AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|github_pat_[A-Za-z0-9_]{50,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{20,}"
        r"|rk_live_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
        r"|glpat-[A-Za-z0-9_-]{20}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"|-----BEGIN[A-Z ]{0,20}PRIVATE KEY-----)"
    ),
    0.95,
    bounded(TOKEN_CHARS),
)
KEY_VALUE = Detector(E.SECRET, re.compile(r"[:=][ ]*[\"']?([^\s\"',;\x00]{8,})"), 0.8, _v_kv_secret)
PROSE_SECRET = Detector(E.SECRET, _PROSE_SECRET, 0.8, _v_prose_secret)
URL_CREDENTIALS = Detector(E.SECRET, _URL_CREDENTIALS, 0.9, _v_url_credentials)
KEYWORD_TOKEN = Detector(E.SECRET, _KEYWORD_TOKEN, 0.8, _v_keyword_token)
HIGH_ENTROPY = Detector(E.SECRET, re.compile(r"[A-Za-z0-9_+/=-]{32,256}"), 0.6, _v_entropy)

FAMILY = Family(
    name="secrets",
    entities=frozenset({E.SECRET}),
    members=(VENDOR_KEYS, KEY_VALUE, PROSE_SECRET, URL_CREDENTIALS, KEYWORD_TOKEN, HIGH_ENTROPY),
    positives=(
        ("key AKIAIOSFODNN7EXAMPLE in the config", "AKIAIOSFODNN7EXAMPLE"),
        ("password=Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ("token: 9fQ2xL7vT4mZ8kR1wB6yN3pD5sH0jC2uE7gA", "9fQ2xL7vT4mZ8kR1wB6yN3pD5sH0jC2uE7gA"),
        ("the admin password was reset to Qu4rtz!vale by IT.", "Qu4rtz!vale"),
        ("mysql://app:Wr3n!ch#7@192.0.2.44:3306/db", "Wr3n!ch#7"),
        ("they shared the key Qm7vTz2LpXw4 in chat", "Qm7vTz2LpXw4"),
    ),
    negatives=(
        "status=shipped; priority=normal",
        "tok_9fQ2xL7vT4mZ8kR1wB6yN3pD5sH0jC2uE7gA",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "The quick brown fox jumps over the lazy dog",
        "the password was reset to the default by the helpdesk",
        "see https://example.org:8443/docs and mailto:ops@example.org",
        "redis://:****@cache:6379/0",
        "the key Ingredient was flour",
    ),
)

__all__ = [
    "FAMILY",
    "HIGH_ENTROPY",
    "KEYWORD_TOKEN",
    "KEY_VALUE",
    "PROSE_SECRET",
    "URL_CREDENTIALS",
    "VENDOR_KEYS",
]
