"""Passphrase-based key derivation: Argon2id (RFC 9106) by default, scrypt (RFC 7914) as an alternative.

Both come from ``cryptography``. Parameters are stored beside the salt so a key ring records how it was made.
Defaults follow RFC 9106's second recommended option scaled to a laptop: Argon2id, t=3, m=64 MiB, p=1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bastion.errors import InvalidInput

logger = logging.getLogger(__name__)

KDF_NAMES = ("argon2id", "scrypt")
KEY_LENGTH = 32
SALT_SIZE = 16
# Bounds on stored parameters: keyring.json is not authenticated until the key is derived, so an attacker who
# edits it chooses the cost of every open (t=64, 1 GiB, p=16 took 68 s). At the bounds an open costs about
# 2 s on a laptop core; the defaults (t=3, 64 MiB) stay far inside them.
_MAX_MEMORY_KIB = 256 * 1024
_MAX_TIME_COST = 10
_MAX_PARALLELISM = 8
_MAX_COST_KIB = 8 * 256 * 1024  # time_cost x memory_kib: the memory-passes an open may take


@dataclass(frozen=True)
class KdfParams:
    """How a passphrase becomes a key.

    ``argon2id``: ``time_cost`` iterations, ``memory_kib`` KiB, ``parallelism`` lanes.
    ``scrypt``: N = ``memory_kib`` (a power of two; memory ≈ N KiB with r = 8), p = ``parallelism``;
    ``time_cost`` is unused.
    """

    name: str = "argon2id"
    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1

    @classmethod
    def unsafe_fast(cls, name: str = "argon2id") -> KdfParams:
        """Tiny parameters for tests only: a passphrase under these is cheap to brute-force."""
        logger.warning("using unsafe_fast KDF parameters: for tests only")
        return cls(name=name, time_cost=1, memory_kib=256, parallelism=1)

    def validate(self) -> None:
        if self.name not in KDF_NAMES:
            raise InvalidInput(f"unknown KDF {self.name!r} (use one of: {', '.join(KDF_NAMES)})")
        if not 1 <= self.parallelism <= _MAX_PARALLELISM:
            raise InvalidInput(f"KDF parallelism must be between 1 and {_MAX_PARALLELISM}")
        if not 8 * self.parallelism <= self.memory_kib <= _MAX_MEMORY_KIB:
            raise InvalidInput(f"KDF memory must be between {8 * self.parallelism} and {_MAX_MEMORY_KIB} KiB")
        if not 1 <= self.time_cost <= _MAX_TIME_COST:
            raise InvalidInput(f"KDF time cost must be between 1 and {_MAX_TIME_COST}")
        if self.name == "argon2id" and self.time_cost * self.memory_kib > _MAX_COST_KIB:
            raise InvalidInput("KDF cost (time x memory) is above the bound")
        if self.name == "scrypt" and (self.memory_kib & (self.memory_kib - 1)) != 0:
            raise InvalidInput("scrypt memory_kib (N) must be a power of two")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "time_cost": self.time_cost,
            "memory_kib": self.memory_kib,
            "parallelism": self.parallelism,
        }

    @classmethod
    def from_dict(cls, data: Any) -> KdfParams:
        if not isinstance(data, dict) or set(data) != {"name", "time_cost", "memory_kib", "parallelism"}:
            raise InvalidInput("malformed KDF parameters")
        values = [data["time_cost"], data["memory_kib"], data["parallelism"]]
        if not isinstance(data["name"], str) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise InvalidInput("malformed KDF parameters")
        params = cls(
            name=data["name"],
            time_cost=data["time_cost"],
            memory_kib=data["memory_kib"],
            parallelism=data["parallelism"],
        )
        params.validate()
        return params


def derive_key(passphrase: str | bytes, *, salt: bytes, params: KdfParams) -> bytes:
    """A 32-byte key from a passphrase, a random salt (>= 16 bytes) and the given parameters."""
    params.validate()
    if len(salt) < SALT_SIZE:
        raise InvalidInput("KDF salt too short")
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not secret:
        raise InvalidInput("empty passphrase")
    if params.name == "argon2id":
        return Argon2id(
            salt=salt,
            length=KEY_LENGTH,
            iterations=params.time_cost,
            lanes=params.parallelism,
            memory_cost=params.memory_kib,
        ).derive(secret)
    return Scrypt(salt=salt, length=KEY_LENGTH, n=params.memory_kib, r=8, p=params.parallelism).derive(secret)


__all__ = ["KDF_NAMES", "KdfParams", "derive_key"]
