"""The key-provider seam: where a local key ring, a PKCS#11 token, an HSM or a KMS plugs in.

A *key-encryption key* (KEK) lives in the provider, one versioned series per environment (dev, staging,
prod); it never leaves the provider in the clear. Every artifact has its own *data key* (DEK, 32 random bytes
from :func:`new_dek`); the provider wraps it under the environment's current KEK and unwraps it with the KEK
version recorded in the :class:`WrappedKey`. ``context`` (bytes, or str encoded as UTF-8) is bound to the wrap
as associated data: unwrapping with another context fails.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bastion.errors import IntegrityError

DEK_SIZE = 32


def new_dek() -> bytes:
    """A fresh 256-bit data key from the operating system's CSPRNG."""
    return os.urandom(DEK_SIZE)


def context_bytes(context: bytes | str) -> bytes:
    """The associated data for a wrap: ``bytes`` as given, ``str`` as UTF-8."""
    if isinstance(context, str):
        return context.encode("utf-8")
    if isinstance(context, bytes | bytearray):
        return bytes(context)
    raise TypeError("context must be bytes or str")


def dek_aad(env: str, version: int, context: bytes) -> bytes:
    """The AES-GCM associated data of a DEK wrap, shared by every provider: ``env ‖ KEK version ‖ context``
    (a wrap cannot be moved to another environment, KEK version or context)."""
    return b"bastion-dek\x00" + env.encode() + b"\x00" + str(version).encode() + b"\x00" + context


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under one KEK version of one environment."""

    provider: str
    env: str
    kek_version: int
    ciphertext: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "env": self.env,
            "kek_version": self.kek_version,
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> WrappedKey:
        """Parse; anything malformed raises :class:`IntegrityError` (a stored wrap was damaged)."""
        try:
            if not isinstance(data, dict) or set(data) != {"provider", "env", "kek_version", "ciphertext"}:
                raise ValueError("fields")
            provider, env, version, ct = (
                data["provider"],
                data["env"],
                data["kek_version"],
                data["ciphertext"],
            )
            if not (isinstance(provider, str) and isinstance(env, str) and isinstance(ct, str)):
                raise ValueError("types")
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ValueError("version")
            raw = base64.b64decode(ct.encode("ascii"), validate=True)
            if base64.b64encode(raw).decode("ascii") != ct:
                raise ValueError("non-canonical base64")
        except (ValueError, KeyError, binascii.Error, UnicodeEncodeError) as exc:
            raise IntegrityError("wrapped key is malformed") from exc
        return cls(provider=provider, env=env, kek_version=version, ciphertext=raw)

    @classmethod
    def from_json(cls, text: str | bytes) -> WrappedKey:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError("wrapped key is malformed") from exc
        return cls.from_dict(data)


@dataclass(frozen=True)
class HeldWrap:
    """One secret a :class:`WrapHolder` keeps wrapped: the holder's id for it, the wrap, and its context."""

    key: str
    wrapped: WrappedKey
    context: bytes | str


@runtime_checkable
class WrapHolder(Protocol):
    """Anything besides the registry's data keys that keeps a secret wrapped under a KEK (data-protection
    scope keys, watermark keys, the attester key, …).

    Key rotation rewraps every held wrap of the rotated environment (:meth:`replace` stores the new one
    atomically), and retiring a KEK version is refused while any holder still has a wrap under it.
    A capability registers a factory ``(settings, engine) -> WrapHolder`` under the entry-point group
    ``bastion.wrap_holders``.
    """

    label: str

    def held(self) -> list[HeldWrap]: ...

    def replace(self, key: str, wrapped: WrappedKey) -> None: ...


@dataclass(frozen=True)
class KekInfo:
    """Public facts about one KEK version (never the key itself)."""

    env: str
    version: int
    created_at: str
    current: bool
    retired: bool
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "version": self.version,
            "created_at": self.created_at,
            "current": self.current,
            "retired": self.retired,
            "label": self.label,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> KekInfo:
        data = json.loads(text)
        return cls(
            env=str(data["env"]),
            version=int(data["version"]),
            created_at=str(data["created_at"]),
            current=bool(data["current"]),
            retired=bool(data["retired"]),
            label=str(data.get("label", "")),
        )


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps data keys under per-environment, versioned key-encryption keys.

    Errors: wrapping for an unknown environment, or retiring an unknown version, raises
    :class:`~bastion.errors.KeyNotFound`; unwrapping with a *retired* KEK version raises ``KeyNotFound``
    (rewrap before retiring). A wrap that fails to authenticate (tampered bytes, wrong context, another
    provider, an environment or version the provider never had) raises :class:`~bastion.errors.IntegrityError`
    with one opaque message. Every provider runs ``tests/conformance/test_key_providers.py`` (the local key
    ring, PKCS#11 on SoftHSM2).
    """

    name: str

    def wrap(self, *, env: str, dek: bytes, context: bytes | str) -> WrappedKey:
        """Encrypt ``dek`` under the current KEK of ``env``, binding ``context``."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, context: bytes | str) -> bytes:
        """Decrypt a wrapped DEK with the KEK version it records."""
        ...

    def rotate(self, *, env: str) -> int:
        """Create a new KEK version for ``env``, make it current, return its number."""
        ...

    def retire(self, *, env: str, version: int) -> None:
        """Destroy a non-current KEK version; DEKs still wrapped under it become unreadable."""
        ...

    def versions(self, env: str) -> list[KekInfo]:
        """Every KEK version of ``env``, oldest first."""
        ...

    def current_version(self, env: str) -> int:
        """The KEK version that :meth:`wrap` uses for ``env``."""
        ...


def rewrap(
    provider: KeyProvider, wrapped: WrappedKey, *, context: bytes | str, env: str | None = None
) -> WrappedKey:
    """Re-encrypt a wrapped DEK under the current KEK of ``env`` (default: its own environment).

    Used after :meth:`KeyProvider.rotate` (rewrap every DEK, then retire the old version) and to promote an
    artifact to another environment. The artifact ciphertext is untouched.
    """
    dek = provider.unwrap(wrapped, context=context)
    return provider.wrap(env=env or wrapped.env, dek=dek, context=context)


__all__ = [
    "DEK_SIZE",
    "HeldWrap",
    "KekInfo",
    "KeyProvider",
    "WrapHolder",
    "WrappedKey",
    "context_bytes",
    "new_dek",
    "rewrap",
]
