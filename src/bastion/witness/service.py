"""The witness's state and checks: a pinned log key, its own Ed25519 key and an append-only file of heads.

A head is accepted only when its signature verifies under the pinned log key and, when the witness already
holds a head, an RFC 6962 consistency proof (RFC 6962 §2.1.2) shows the held tree is a prefix of the new one.
The same head again is answered with the same countersignature; an older head, a fork at the same size or a
proof that does not verify is refused (``IntegrityError``, HTTP 409) and the held head stays. Accepted heads
are appended to ``heads.jsonl`` (``O_APPEND``, fsync) before they are countersigned, so a witness never
vouches for a head it could lose. One witness serves one log.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.crypto.signing import Ed25519Signer, Ed25519Verifier
from bastion.errors import ConfigError, Conflict, IntegrityError, InvalidInput
from bastion.files import atomic_write
from bastion.store import merkle
from bastion.store.auditlog import SignedTreeHead, canonical_json
from bastion.store.witness import cosigned_data

LOG_KEY = "log-key.pem"
WITNESS_KEY = "witness-key.pem"
WITNESS_PUB = "witness-key.pub.pem"
HEADS = "heads.jsonl"
MAX_PATH = 64


@dataclass(frozen=True)
class Cosigned:
    head: SignedTreeHead
    cosignature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head.to_dict(), "cosignature": self.cosignature.hex()}


class WitnessService:
    """One witness directory: ``init`` pins the log key and makes the countersigning key, ``open`` loads."""

    def __init__(self, directory: Path, *, log_key: Ed25519Verifier, signer: Ed25519Signer) -> None:
        self.directory = directory
        self.log_key = log_key
        self.signer = signer
        self._lock = threading.Lock()
        self._latest = self._load_latest()

    @classmethod
    def init(cls, directory: str | os.PathLike[str], *, log_public_key_pem: str) -> WitnessService:
        d = Path(directory)
        if (d / WITNESS_KEY).exists():
            raise Conflict(f"a witness already exists in {d}")
        try:
            log_key = Ed25519Verifier.from_pem(log_public_key_pem)
        except Exception as exc:
            raise InvalidInput("the log key is not an Ed25519 public key in PEM") from exc
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        signer = Ed25519Signer(key)
        private = key.private_bytes(  # kept 0600 in the witness's own directory, never in a bastion home
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        atomic_write(d / LOG_KEY, log_key.public_key_pem().encode("ascii"), mode=0o600)
        atomic_write(d / WITNESS_KEY, private, mode=0o600)
        atomic_write(d / WITNESS_PUB, signer.public_key_pem().encode("ascii"), mode=0o644)
        return cls(d, log_key=log_key, signer=signer)

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> WitnessService:
        d = Path(directory)
        try:
            log_key = Ed25519Verifier.from_pem((d / LOG_KEY).read_text(encoding="ascii"))
            key = serialization.load_pem_private_key((d / WITNESS_KEY).read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise ConfigError(f"no witness in {d}", hint="run 'bastion witness init' first") from exc
        except (OSError, ValueError, UnicodeDecodeError, IntegrityError) as exc:
            raise ConfigError(f"the witness in {d} is damaged") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(f"the witness key in {d} is not Ed25519")
        return cls(d, log_key=log_key, signer=Ed25519Signer(key))

    def public_key_pem(self) -> str:
        return self.signer.public_key_pem()

    def _load_latest(self) -> SignedTreeHead | None:
        path = self.directory / HEADS
        if not path.exists():
            return None
        latest = None
        for n, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                latest = SignedTreeHead.from_dict(json.loads(line)["head"])
            except (ValueError, KeyError, TypeError, IntegrityError) as exc:
                raise ConfigError(f"{path}: line {n} is damaged") from exc
        return latest

    def latest(self) -> Cosigned | None:
        with self._lock:
            head = self._latest
        return None if head is None else Cosigned(head, self.signer.sign(cosigned_data(head)))

    def submit(self, head: SignedTreeHead, *, consistency: Sequence[bytes] | None = None) -> Cosigned:
        """Check ``head`` against the pinned key and the held head, keep it, and countersign it."""
        try:
            self.log_key.verify(head.signed_data(), head.signature)
        except Exception as exc:
            raise IntegrityError("the head is not signed by the pinned log key") from exc
        if head.size <= 0 or len(head.root_hash) != 32:
            raise InvalidInput("a head must cover at least one entry")
        with self._lock:
            held = self._latest
            if held is not None:
                if head.size < held.size:
                    raise IntegrityError(f"older than the held head (size {held.size})")
                if head.size == held.size:
                    if head.root_hash != held.root_hash:
                        raise IntegrityError(f"a different tree of size {held.size} was witnessed (fork)")
                    return Cosigned(held, self.signer.sign(cosigned_data(held)))
                path = tuple(consistency or ())
                if len(path) > MAX_PATH:
                    raise InvalidInput("consistency proof too long")
                try:
                    merkle.verify_consistency(
                        old_size=held.size,
                        new_size=head.size,
                        old_root=held.root_hash,
                        new_root=head.root_hash,
                        path=path,
                    )
                except (IntegrityError, InvalidInput) as exc:
                    raise IntegrityError(f"not consistent with the held head (size {held.size})") from exc
            cosignature = self.signer.sign(cosigned_data(head))
            line = canonical_json({"head": head.to_dict(), "cosignature": cosignature.hex()}) + b"\n"
            fd = os.open(self.directory / HEADS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._latest = head
            return Cosigned(head, cosignature)


__all__ = ["Cosigned", "WitnessService"]
