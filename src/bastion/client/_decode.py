"""JSON from the server → the same frozen dataclasses the local Vault returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.access import Identity
from bastion.access.control import Revocation, TokenInfo
from bastion.crypto.interface import KekInfo
from bastion.errors import ServiceError
from bastion.store.auditlog import (
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
    WitnessCheck,
)
from bastion.vault import Annotation, ArtifactVersion, FileEntry, KeyRotation


def _fail(what: str, exc: Exception) -> ServiceError:
    return ServiceError(f"the server sent a malformed {what}")


def identity(d: Mapping[str, Any]) -> Identity:
    try:
        return Identity(
            id=str(d["id"]),
            name=str(d["name"]),
            role=str(d["role"]),
            models=tuple(str(m) for m in d["models"]),
            envs=tuple(str(e) for e in d["envs"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("identity", exc) from exc


def revocation(d: Mapping[str, Any]) -> Revocation:
    try:
        return Revocation(
            identity=None if d["identity"] is None else identity(d["identity"]),
            removed_models=tuple(d["removed"]["models"]),
            removed_envs=tuple(d["removed"]["envs"]),
            not_held_models=tuple(d["not_held"]["models"]),
            not_held_envs=tuple(d["not_held"]["envs"]),
        )
    except (KeyError, TypeError) as exc:
        raise _fail("revocation", exc) from exc


def token_info(d: Mapping[str, Any]) -> TokenInfo:
    try:
        return TokenInfo(
            id=str(d["id"]),
            identity=str(d["identity"]),
            role=str(d["role"]),
            created_at=str(d["created_at"]),
            revoked=bool(d["revoked"]),
        )
    except (KeyError, TypeError) as exc:
        raise _fail("token", exc) from exc


def annotation(d: Mapping[str, Any]) -> Annotation:
    try:
        return Annotation(
            namespace=str(d["namespace"]),
            data=dict(d["data"]),
            created_at=str(d["created_at"]),
            created_by=str(d["created_by"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("annotation", exc) from exc


def artifact_version(d: Mapping[str, Any]) -> ArtifactVersion:
    try:
        return ArtifactVersion(
            name=d["name"],
            version=int(d["version"]),
            kind=str(d["kind"]),
            env=str(d["env"]),
            manifest_digest=str(d["manifest_digest"]),
            size=int(d["size"]),
            files=tuple(
                FileEntry(path=str(f["path"]), sha256=str(f["sha256"]), size=int(f["size"]))
                for f in d["files"]
            ),
            created_at=str(d["created_at"]),
            created_by=str(d["created_by"]),
            classification=d.get("classification"),
            tags=dict(d.get("tags") or {}),
            metadata=dict(d.get("metadata") or {}),
            annotations=tuple(annotation(a) for a in d.get("annotations") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("version", exc) from exc


def key_rotation(d: Mapping[str, Any]) -> KeyRotation:
    try:
        return KeyRotation(
            env=str(d["env"]),
            kek_version=int(d["kek_version"]),
            rewrapped=int(d["rewrapped"]),
            other={str(k): int(v) for k, v in dict(d.get("other") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("key rotation", exc) from exc


def kek_info(d: Mapping[str, Any]) -> KekInfo:
    try:
        return KekInfo(
            env=str(d["env"]),
            version=int(d["version"]),
            created_at=str(d["created_at"]),
            current=bool(d["current"]),
            retired=bool(d["retired"]),
            label=str(d.get("label", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("key", exc) from exc


def _hexes(items: Any) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(str(p)) for p in items)


def log_verification(d: Mapping[str, Any]) -> LogVerification:
    try:
        return LogVerification(
            size=int(d["size"]),
            root_hash=bytes.fromhex(d["root_hash"]),
            heads_checked=int(d["heads_checked"]),
            witnesses=tuple(
                WitnessCheck(witness=str(w["witness"]), size=int(w["size"]), heads=int(w["heads"]))
                for w in d.get("witnesses") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("log verification", exc) from exc


def tree_head(d: Mapping[str, Any]) -> SignedTreeHead:
    return SignedTreeHead.from_dict(d)


def inclusion(d: Mapping[str, Any]) -> InclusionProof:
    try:
        return InclusionProof(
            index=int(d["index"]),
            tree_size=int(d["tree_size"]),
            leaf_hash=bytes.fromhex(d["leaf_hash"]),
            path=_hexes(d["path"]),
            root_hash=bytes.fromhex(d["root_hash"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("inclusion proof", exc) from exc


def consistency(d: Mapping[str, Any]) -> ConsistencyProof:
    try:
        return ConsistencyProof(
            old_size=int(d["old_size"]),
            new_size=int(d["new_size"]),
            old_root=bytes.fromhex(d["old_root"]),
            new_root=bytes.fromhex(d["new_root"]),
            path=_hexes(d["path"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("consistency proof", exc) from exc


def audit_entry(d: Mapping[str, Any]) -> AuditEntry:
    try:
        return AuditEntry(
            index=int(d["index"]),
            actor=str(d["actor"]),
            action=str(d["action"]),
            target=str(d["target"]),
            outcome=str(d["outcome"]),
            timestamp=str(d["timestamp"]),
            details=dict(d.get("details") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail("audit entry", exc) from exc
