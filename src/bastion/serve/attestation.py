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

Where trust comes from (nothing the gateway host can replace by writing files):

* the attester's private key is sealed under the key ring (:meth:`KeyProvider.wrap`: an Argon2id-derived KEK
  for the local ring, or the HSM), never under the raw passphrase;
* the trusted attester keys, the approved gateway-configuration digest and the allowed package versions of
  each model come from a :class:`ReleasePolicyDocument` signed with the home's signing key (which opens only
  with the passphrase) by an explicit approval (``bastion serve MODEL --approve``), and the signature is
  checked against the key the vault itself opened. Deleting or replacing ``serve/*`` files therefore makes key
  release fail; it never regenerates trust.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.crypto.canonical import legacy_json
from bastion.errors import BastionError, ConfigError, IntegrityError, PolicyViolation
from bastion.serve.interface import EvidenceVerifier

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

    def canonical(self) -> bytes:  # claims format v1: signed bytes kept exactly (bastion.crypto.canonical)
        return legacy_json(asdict(self), ascii=True)


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


ATTESTER_KEY_FILE = "attester_ed25519.sealed.json"
RELEASE_POLICY_FILE = "release_policy.json"
_ATTESTER_FORMAT = "bastion-serve-attester/1"
_POLICY_FORMAT = "bastion-release-policy/1"
_ATTESTER_CONTEXT = "bastion:serve-attester:v1"
ATTESTER_ENV = "prod"


class Sealer(Protocol):
    """What sealing needs of a key provider (:class:`bastion.crypto.interface.KeyProvider`)."""

    def wrap(self, *, env: str, dek: bytes, context: bytes | str) -> Any: ...

    def unwrap(self, wrapped: Any, *, context: bytes | str) -> bytes: ...


class PolicySigner(Protocol):
    """The home's signing keys (:class:`bastion.crypto.signing.SigningKeys`): Ed25519 sign and verify."""

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, data: bytes, signature: bytes) -> None: ...


def _read_small(path: Path, limit: int = 1 << 20) -> bytes:
    """A regular file of at most ``limit`` bytes, read without following a symlink or blocking on a FIFO."""
    from bastion.files import read_regular_file

    return read_regular_file(path, limit=limit)


def create_software_attester(directory: Path, *, keys: Sealer) -> SoftwareAttester:
    """Generate the home's attester key, sealed under the key ring (refuses to overwrite one)."""
    from bastion.crypto.interface import WrappedKey
    from bastion.files import atomic_write

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / ATTESTER_KEY_FILE
    if path.exists() or path.is_symlink():
        raise ConfigError(f"an attester key already exists at {path}")
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    wrapped: WrappedKey = keys.wrap(env=ATTESTER_ENV, dek=raw, context=_ATTESTER_CONTEXT)
    doc = {"format": _ATTESTER_FORMAT, "wrapped": wrapped.to_dict()}
    atomic_write(path, json.dumps(doc, sort_keys=True).encode("utf-8"), mode=0o600)
    return SoftwareAttester(key)


def open_software_attester(directory: Path, *, keys: Sealer) -> SoftwareAttester:
    """The home's attester key, unsealed through the key ring; any damage is an IntegrityError."""
    from bastion.crypto.interface import WrappedKey

    path = directory / ATTESTER_KEY_FILE
    try:
        doc = json.loads(_read_small(path))
        if doc.get("format") != _ATTESTER_FORMAT:
            raise ValueError("format")
        wrapped = WrappedKey.from_dict(doc["wrapped"])
    except FileNotFoundError as exc:
        raise PolicyViolation(
            "no attester key in this home: approve the gateway first ('bastion serve MODEL --approve')"
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError, BastionError) as exc:
        raise IntegrityError("the software attester key is damaged") from exc
    try:
        raw = keys.unwrap(wrapped, context=_ATTESTER_CONTEXT)
        return SoftwareAttester(Ed25519PrivateKey.from_private_bytes(raw))
    except (BastionError, ValueError) as exc:
        raise IntegrityError("the software attester key does not open") from exc


class AttesterKeyHolder:
    """The wrap of the sealed attester key (``serve/attester_ed25519.sealed.json``), for rotate/retire."""

    label = "gateway attester key"

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / ATTESTER_KEY_FILE

    def held(self) -> list[Any]:
        from bastion.crypto.interface import HeldWrap, WrappedKey

        if not self.path.exists():
            return []
        try:
            doc = json.loads(_read_small(self.path))
            wrapped = WrappedKey.from_dict(doc["wrapped"])
        except (ValueError, KeyError, TypeError, AttributeError, BastionError) as exc:
            raise IntegrityError("the software attester key is damaged") from exc
        return [HeldWrap(key="attester", wrapped=wrapped, context=_ATTESTER_CONTEXT)]

    def replace(self, key: str, wrapped: Any) -> None:
        from bastion.files import atomic_write

        doc = {"format": _ATTESTER_FORMAT, "wrapped": wrapped.to_dict()}
        atomic_write(self.path, json.dumps(doc, sort_keys=True).encode("utf-8"), mode=0o600)


def wrap_holder(settings: Any, engine: Any) -> AttesterKeyHolder:
    """Entry point ``bastion.wrap_holders: attester`` (the key lives in ``<home>/serve``)."""
    del engine
    return AttesterKeyHolder(Path(settings.home) / "serve")


@dataclass(frozen=True)
class ModelReleasePolicy:
    """What one model's key release demands: approved attesters, config digest and package versions."""

    attesters: tuple[str, ...]  # raw Ed25519 public keys, hex
    config_digest: str
    package_versions: tuple[str, ...]
    approved_by: str
    approved_at: float

    def trusted_keys(self) -> list[Ed25519PublicKey]:
        return [Ed25519PublicKey.from_public_bytes(bytes.fromhex(k)) for k in self.attesters]


@dataclass(frozen=True)
class ReleasePolicyDocument:
    """The signed key-release policies of a home, by model name."""

    models: dict[str, ModelReleasePolicy]

    def canonical(self) -> bytes:
        body = {"format": _POLICY_FORMAT, "models": {k: asdict(v) for k, v in sorted(self.models.items())}}
        return legacy_json(body, ascii=True)  # digests already approved stay valid

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()


def load_release_policy(directory: Path, *, signer: PolicySigner) -> ReleasePolicyDocument:
    """The signed policy document; missing → empty (nothing released), bad signature → IntegrityError."""
    path = directory / RELEASE_POLICY_FILE
    try:
        doc = json.loads(_read_small(path))
    except FileNotFoundError:
        return ReleasePolicyDocument(models={})
    except ValueError as exc:
        raise IntegrityError("the key-release policy is damaged") from exc
    try:
        body = base64.b64decode(doc["policy"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError("the key-release policy is damaged") from exc
    try:
        signer.verify(body, signature)
    except Exception as exc:  # InvalidSignature or the signer's IntegrityError: one opaque answer
        raise IntegrityError("the key-release policy signature does not verify") from exc
    try:
        data = json.loads(body)
        if data.get("format") != _POLICY_FORMAT:
            raise ValueError("format")
        models = {
            str(name): ModelReleasePolicy(
                attesters=tuple(entry["attesters"]),
                config_digest=str(entry["config_digest"]),
                package_versions=tuple(entry["package_versions"]),
                approved_by=str(entry["approved_by"]),
                approved_at=float(entry["approved_at"]),
            )
            for name, entry in data["models"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError("the key-release policy is damaged") from exc
    return ReleasePolicyDocument(models=models)


def save_release_policy(directory: Path, document: ReleasePolicyDocument, *, signer: PolicySigner) -> None:
    from bastion.files import atomic_write

    body = document.canonical()
    out = {
        "policy": base64.b64encode(body).decode("ascii"),
        "signature": base64.b64encode(signer.sign(body)).decode("ascii"),
    }
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(directory / RELEASE_POLICY_FILE, json.dumps(out).encode("utf-8"), mode=0o600)


def attester_public_hex(attester: SoftwareAttester) -> str:
    return attester.public_key().public_bytes_raw().hex()


__all__ = [
    "ATTESTER_KEY_FILE",
    "RELEASE_POLICY_FILE",
    "SOFTWARE_FORMAT",
    "AttesterKeyHolder",
    "Claims",
    "Evidence",
    "EvidenceVerifier",
    "KeyReleaseDecision",
    "KeyReleasePolicy",
    "ModelReleasePolicy",
    "ReleasePolicyDocument",
    "SoftwareAttester",
    "SoftwareEvidenceVerifier",
    "attester_public_hex",
    "create_software_attester",
    "load_release_policy",
    "new_nonce",
    "open_software_attester",
    "save_release_policy",
    "wrap_holder",
]
