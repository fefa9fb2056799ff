"""Key release over attestation evidence (confidential-computing ready).

A model's data key is released only after a :class:`KeyReleasePolicy` has checked *evidence* about the process
that asks for it. The evidence format is pluggable: an :class:`EvidenceVerifier` turns evidence of its format
into verified :class:`Claims` or raises. bastion ships a software attester (an Ed25519 key in the project home
signs the claims: package version, gateway-config digest, model digest, a fresh nonce) and its verifier; an
AWS Nitro Enclaves or AMD SEV-SNP verifier plugs in by implementing the same Protocol for its own format (the
attestation document's PCRs / the SNP report's measurement become the claims).

The software attester proves only what the host says about itself: it binds the key release to the exact
package, configuration and model digests and makes every release and denial auditable, but it is not a
hardware root of trust.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.errors import ConfigError, IntegrityError

SOFTWARE_FORMAT = "bastion-software-v1"


@dataclass(frozen=True)
class Claims:
    """What the evidence asserts about the running gateway."""

    package_version: str
    config_digest: str
    model_digest: str
    model_ref: str
    nonce: str
    issued_at: float
    platform: str = "software"

    def canonical(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Evidence:
    """Opaque evidence of one format; ``payload`` is what the attester signed or the platform produced."""

    format: str
    payload: bytes
    signature: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "payload": base64.b64encode(self.payload).decode(),
                "signature": base64.b64encode(self.signature).decode(),
            }
        )


class EvidenceVerifier(Protocol):
    """Verifies evidence of one format: returns verified claims or raises IntegrityError (opaque)."""

    format: str

    def verify(self, evidence: Evidence) -> Claims: ...


class SoftwareAttester:
    """Signs claims about this gateway process with an Ed25519 key."""

    format = SOFTWARE_FORMAT

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def attest(self, claims: Claims) -> Evidence:
        payload = claims.canonical()
        return Evidence(format=self.format, payload=payload, signature=self._key.sign(payload))


class SoftwareEvidenceVerifier:
    """Verifies ``bastion-software-v1`` evidence against a set of trusted attester public keys."""

    format = SOFTWARE_FORMAT

    def __init__(self, trusted_keys: Sequence[Ed25519PublicKey]) -> None:
        if not trusted_keys:
            raise ConfigError("a software evidence verifier needs at least one trusted attester key")
        self._keys = tuple(trusted_keys)

    def verify(self, evidence: Evidence) -> Claims:
        if evidence.format != self.format:
            raise IntegrityError("attestation evidence did not verify")
        for key in self._keys:
            try:
                key.verify(evidence.signature, evidence.payload)
            except InvalidSignature:
                continue
            try:
                data = json.loads(evidence.payload)
                return Claims(**data)
            except (ValueError, TypeError) as exc:
                raise IntegrityError("attestation evidence did not verify") from exc
        raise IntegrityError("attestation evidence did not verify")


@dataclass(frozen=True)
class KeyReleaseDecision:
    released: bool
    reason: str
    claims: Claims | None


@dataclass(frozen=True)
class KeyReleasePolicy:
    """Release a model key only to evidence that verifies and matches what the registry and config expect.

    Empty ``evidence_formats`` is rejected (fail closed). ``allowed_package_versions`` empty means "this
    package's own version".
    """

    evidence_formats: tuple[str, ...]
    expected_model_digest: str
    expected_config_digest: str
    allowed_package_versions: tuple[str, ...]
    max_age_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.evidence_formats:
            raise ConfigError("a key-release policy needs at least one accepted evidence format")
        if not self.allowed_package_versions:
            raise ConfigError("a key-release policy needs at least one allowed package version")

    def evaluate(
        self,
        *,
        evidence: Evidence,
        verifiers: Mapping[str, EvidenceVerifier],
        nonce: str,
        now: Callable[[], float] = time.time,
    ) -> KeyReleaseDecision:
        """Never raises for a policy failure: returns a denial with a one-line reason (caller logs it)."""
        if evidence.format not in self.evidence_formats:
            return KeyReleaseDecision(False, f"evidence format {evidence.format!r} not accepted", None)
        verifier = verifiers.get(evidence.format)
        if verifier is None:
            return KeyReleaseDecision(False, f"no verifier for evidence format {evidence.format!r}", None)
        try:
            claims = verifier.verify(evidence)
        except IntegrityError:
            return KeyReleaseDecision(False, "attestation evidence did not verify", None)
        checks = (
            (claims.nonce == nonce, "evidence nonce does not match the challenge"),
            (0 <= now() - claims.issued_at <= self.max_age_s, "evidence is stale or from the future"),
            (claims.model_digest == self.expected_model_digest, "model digest differs from the registry's"),
            (claims.config_digest == self.expected_config_digest, "gateway configuration digest differs"),
            (claims.package_version in self.allowed_package_versions, "package version not allowed"),
        )
        for ok, reason in checks:
            if not ok:
                return KeyReleaseDecision(False, reason, claims)
        return KeyReleaseDecision(True, "evidence verified and matches policy", claims)


def new_nonce() -> str:
    return os.urandom(16).hex()


ATTESTER_KEY_FILE = "attester_ed25519.pem"
TRUSTED_ATTESTERS_FILE = "trusted_attesters.pem"


def load_or_create_software_attester(
    directory: Path, *, passphrase: str
) -> tuple[SoftwareAttester, list[Ed25519PublicKey]]:
    """The home's software attester key (encrypted PEM) and the trusted attester keys.

    The first start creates the key and trusts it; later starts read both files. Replacing the trust file with
    another key makes key release fail, which is how an operator pins the attester.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / ATTESTER_KEY_FILE
    trust_path = directory / TRUSTED_ATTESTERS_FILE
    secret = passphrase.encode()
    if key_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=secret)
        except (ValueError, TypeError) as exc:
            raise IntegrityError("the software attester key does not open") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise IntegrityError("the software attester key is not an Ed25519 key")
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    if not trust_path.exists():
        trust_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    trusted: list[Ed25519PublicKey] = []
    blob = trust_path.read_bytes()
    marker = b"-----END PUBLIC KEY-----"
    for part in blob.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" not in part:
            continue
        try:
            pub = serialization.load_pem_public_key(part.strip() + b"\n" + marker + b"\n")
        except ValueError as exc:
            raise ConfigError(f"{trust_path}: not a PEM public key") from exc
        if isinstance(pub, Ed25519PublicKey):
            trusted.append(pub)
    if not trusted:
        raise ConfigError(f"{trust_path}: no trusted Ed25519 attester key")
    return SoftwareAttester(key), trusted


__all__ = [
    "SOFTWARE_FORMAT",
    "Claims",
    "Evidence",
    "EvidenceVerifier",
    "KeyReleaseDecision",
    "KeyReleasePolicy",
    "SoftwareAttester",
    "SoftwareEvidenceVerifier",
    "load_or_create_software_attester",
    "new_nonce",
]
