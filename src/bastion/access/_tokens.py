"""The API token format: ``bst_<id>.<secret>`` and the legacy ``bst_`` + 43 characters (see
:mod:`bastion.access.control`), the public ids shown for them, and the salted HMAC the database keeps."""

from __future__ import annotations

import hashlib
import hmac

TOKEN_PREFIX = "bst_"  # noqa: S105 - a public prefix, not a secret
TOKEN_ID_HEX = 16  # 64 random bits: an index, not a secret
LEGACY_ID_LEN = 12
LEGACY_PREFIX = "legacy-"
_ID_CHARS = frozenset("0123456789abcdef")


def _legacy_public_id(row_id: str) -> str:
    """What listings and logs show for a legacy token (its row id is part of its secret)."""
    return LEGACY_PREFIX + hashlib.sha256(b"bastion-legacy-token-id\x00" + row_id.encode()).hexdigest()[:16]


def _public_id(row_id: str) -> str:
    return row_id if len(row_id) == TOKEN_ID_HEX and set(row_id) <= _ID_CHARS else _legacy_public_id(row_id)


def token_id(token: str) -> str | None:
    """The public id of a token string (None when it is not shaped like a bastion token)."""
    row = _row_id(token)
    return None if row is None else _public_id(row)


def _row_id(token: str) -> str | None:
    """The database row id a token names: its id (new format) or its first 12 characters (legacy)."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    body = token[len(TOKEN_PREFIX) :]
    if "." in body:
        ident, _, secret = body.partition(".")
        if len(ident) != TOKEN_ID_HEX or not set(ident) <= _ID_CHARS or not secret:
            return None
        return ident
    return body[:LEGACY_ID_LEN] if len(body) > LEGACY_ID_LEN else None


def _token_digest(salt: bytes, token: str) -> bytes:
    return hmac.new(salt, token.encode("utf-8"), hashlib.sha256).digest()
