"""A throwaway Ed25519 signing key and a signed guard model written to a folder (guard model tests)."""

from __future__ import annotations

from pathlib import Path


def signing_key() -> bytes:
    """A fresh Ed25519 private key, PEM (PKCS8, unencrypted: a test key only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_signed(folder: Path, doc: bytes, pem: bytes) -> bytes:
    """``doc`` as ``m.json`` with its signature ``m.json.sig``; returns the public key (PEM bytes)."""
    from bastion.guard import _train

    sig, public = _train.sign(doc, pem)
    (folder / "m.json").write_bytes(doc)
    (folder / "m.json.sig").write_text(sig)
    return public.encode()
