"""Sealed rows: HMAC-SHA256 over an RFC 8785 (JCS) canonical encoding of the state a row grants.

Authorization state kept in the database (identities, grants, tokens, the version an environment points at)
is untrusted storage: anyone who can write the database could otherwise widen a role or insert a token. Each
such state is sealed with a key only the key ring's holder has, and checked on every read that grants
something; a missing or wrong seal is an :class:`~bastion.errors.IntegrityError` (exit 1), never access.

The key is derived (HKDF-SHA256, RFC 5869) from the home's Ed25519 tree-head signing key, which the
passphrase (or the HSM) protects and which never changes with a passphrase change or a KEK rotation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.crypto.canonical import canonical_json
from bastion.errors import IntegrityError

SEAL_INFO = b"bastion-sealed-rows/v1"


class RowSealer:
    """Seals and checks ``(kind, key, state)`` triples; ``state`` is plain JSON data (no floats needed)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a row-sealing key needs at least 32 bytes")
        self._key = bytes(key)

    @classmethod
    def derive(cls, secret: bytes) -> RowSealer:
        """A sealer whose key is HKDF-SHA256(``secret``, info=``bastion-sealed-rows/v1``)."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SEAL_INFO).derive(secret)
        return cls(key)

    def seal(self, kind: str, key: str, state: Mapping[str, Any]) -> bytes:
        data = canonical_json({"kind": kind, "key": key, "state": dict(state)})
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def check(self, kind: str, key: str, state: Mapping[str, Any], mac: bytes | None, *, what: str) -> None:
        """Raise IntegrityError naming ``what`` unless ``mac`` seals exactly this state."""
        if mac is None:
            raise IntegrityError(
                f"{what} is not sealed (written without the key ring, or before seals: "
                "the owner reviews it, then runs 'bastion access seal --yes')"
            )
        if not hmac.compare_digest(self.seal(kind, key, state), bytes(mac)):
            raise IntegrityError(f"{what} was changed outside bastion (its seal does not match)")


__all__ = ["RowSealer"]
