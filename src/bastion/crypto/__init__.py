"""The few safe cryptographic recipes bastion shares, composed from ``cryptography`` (nothing hand-rolled).

* :mod:`bastion.crypto.aead` — streaming AEAD (AES-256-GCM segments, HKDF per-file key; Tink's design).
* :mod:`bastion.crypto.keys` — the :class:`KeyProvider` seam, data keys, the local key ring and PKCS#11.
* :mod:`bastion.crypto.signing` — manifest signing (OpenSSF model-signing) and Ed25519 for tree heads.
* :mod:`bastion.crypto.kdf` — passphrase key derivation (Argon2id, scrypt).
"""

from __future__ import annotations

from bastion.crypto.aead import RangeRead, StreamInfo, decrypt_stream, encrypt_stream, read_range
from bastion.crypto.interface import KekInfo, KeyProvider, WrappedKey, new_dek, rewrap
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keyring import LocalKeyRing
from bastion.crypto.keys import init_key_provider, open_key_provider

__all__ = [
    "KdfParams",
    "KekInfo",
    "KeyProvider",
    "LocalKeyRing",
    "RangeRead",
    "StreamInfo",
    "WrappedKey",
    "decrypt_stream",
    "encrypt_stream",
    "init_key_provider",
    "new_dek",
    "open_key_provider",
    "read_range",
    "rewrap",
]
