"""Keyed transforms: deterministic AES-SIV tokens, FF1 format-preserving encryption, keyed HMAC hashing.

One data key (a DEK from :func:`bastion.crypto.new_dek`) exists per *token scope*; HKDF-SHA256 derives three
independent sub-keys from it: a 512-bit AES-SIV key (RFC 5297; deterministic authenticated encryption, so the
same value gives the same token under the same scope and joins keep working), a 256-bit FF1 key
(NIST SP 800-38G) and an HMAC-SHA256 key. The scope name is bound as associated data / tweak, so tokens of
one scope never decrypt under another.

Token format: ``tok_`` + unpadded base64url of SIV || ciphertext. The plaintext is padded (ISO/IEC 7816-4:
``0x80`` then zeros) to a multiple of 16 bytes (at least 16; above 64 bytes, a multiple of 64) before it is
encrypted, so a token's length says only which bucket the value's length falls in: every value up to 15 bytes
(a name, an SSN, a date) gives a token of the same length (issue 21 attack21b F-LEN). Padded tokens carry the
associated data ``bastion-token-v2``; tokens made before padding (``bastion-token-v1``, ciphertext as long as
the value) still reveal. Any failure to reveal (wrong scope, edited token, not a token) raises one opaque
:class:`~bastion.errors.CryptoError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.data._ff1 import FF1, MIN_DOMAIN
from bastion.errors import CryptoError, InvalidInput

TOKEN_PREFIX = "tok_"  # noqa: S105 - a format prefix
HMAC_PREFIX = "hmac_"
TOKEN_RE = re.compile(r"tok_[A-Za-z0-9_-]{22,}")
MIN_FPE_DIGITS = len(str(MIN_DOMAIN)) - 1  # 10**6 >= FF1's minimum domain


PAD_BUCKET = 16  # plaintext lengths are rounded up to this many bytes (at least one bucket) …
PAD_LARGE_BUCKET = 64  # … and above this length to multiples of it


def _pad(raw: bytes) -> bytes:
    n = len(raw) + 1
    step = PAD_BUCKET if n <= PAD_LARGE_BUCKET else PAD_LARGE_BUCKET
    return raw + b"\x80" + b"\x00" * (-n % step)


def _unpad(padded: bytes) -> bytes:
    body = padded.rstrip(b"\x00")
    if not body.endswith(b"\x80"):
        raise ValueError("bad padding")
    return body[:-1]


def _derive(dek: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(dek)


class ScopeKeys:
    """The keyed transforms of one token scope."""

    def __init__(self, dek: bytes, *, scope: str) -> None:
        if len(dek) < 32:
            raise InvalidInput("a data key must be at least 32 bytes")
        self.scope = scope
        self._ad = [b"bastion-token-v2", scope.encode("utf-8")]  # padded plaintexts
        self._ad_v1 = [b"bastion-token-v1", scope.encode("utf-8")]  # tokens made before padding
        self._siv = AESSIV(_derive(dek, b"bastion/data/aes-siv", 64))
        self._ff1 = FF1(_derive(dek, b"bastion/data/ff1", 32), 10)
        self._mac_key = _derive(dek, b"bastion/data/hmac", 32)
        self._tweak = hashlib.sha256(scope.encode("utf-8")).digest()[:8]

    # Deterministic tokens --------------------------------------------------------------------------------
    def token(self, value: str) -> str:
        ct = self._siv.encrypt(_pad(value.encode("utf-8")), self._ad)
        return TOKEN_PREFIX + base64.urlsafe_b64encode(ct).rstrip(b"=").decode("ascii")

    def reveal(self, token: str) -> str:
        try:
            if not token.startswith(TOKEN_PREFIX):
                raise ValueError
            body = token[len(TOKEN_PREFIX) :]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            try:
                return _unpad(self._siv.decrypt(raw, self._ad)).decode("utf-8")
            except InvalidTag:
                return self._siv.decrypt(raw, self._ad_v1).decode("utf-8")  # a token made before padding
        except (ValueError, InvalidTag, UnicodeDecodeError) as exc:
            raise CryptoError("token does not reveal under this scope") from exc

    # Format-preserving encryption ---------------------------------------------------------------------------
    def _fpe(self, value: str, *, decrypt: bool) -> str:
        digits = "".join(ch for ch in value if ch.isascii() and ch.isdigit())
        if len(digits) < MIN_FPE_DIGITS:
            raise InvalidInput(
                f"format-preserving encryption needs at least {MIN_FPE_DIGITS} digits per value"
            )
        out = self._ff1.decrypt(digits, self._tweak) if decrypt else self._ff1.encrypt(digits, self._tweak)
        it = iter(out)
        return "".join(next(it) if (ch.isascii() and ch.isdigit()) else ch for ch in value)

    def fpe(self, value: str) -> str:
        """FF1 over the value's digits; every other character stays in place."""
        return self._fpe(value, decrypt=False)

    def fpe_reveal(self, value: str) -> str:
        return self._fpe(value, decrypt=True)

    # Keyed hashing ----------------------------------------------------------------------------------------
    def hmac(self, value: str) -> str:
        digest = hmac.new(self._mac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return HMAC_PREFIX + digest[:32]


__all__ = [
    "HMAC_PREFIX",
    "MIN_FPE_DIGITS",
    "PAD_BUCKET",
    "PAD_LARGE_BUCKET",
    "TOKEN_PREFIX",
    "TOKEN_RE",
    "ScopeKeys",
]
