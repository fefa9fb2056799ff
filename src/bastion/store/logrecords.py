"""The audit log's records: entries (their canonical leaf bytes), signed tree heads, inclusion and
consistency proofs and verification results — frozen dataclasses that serialise to JSON, shared by the log
(:mod:`bastion.store.auditlog`), witnesses, ownership reports and remote clients.

A leaf is RFC 8785 canonical JSON of the entry (:mod:`bastion.crypto.canonical`); entries written before
issue 13 (or outside I-JSON) keep the previous encoding, which :meth:`AuditEntry.matches_leaf` accepts too.
Tree-head bytes hold only ASCII strings and small integers, so they are the same under both encodings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.crypto.canonical import canonical_forms, canonical_json, legacy_json
from bastion.errors import IntegrityError
from bastion.store import merkle

OUTCOMES = ("ok", "denied", "error")
LOG_ID = "bastion-audit-log/v1"


def leaf_encoding(obj: Any) -> bytes:
    """An entry's leaf bytes: RFC 8785; an entry outside I-JSON (a NaN or a huge integer in its details)
    keeps the pre-RFC encoding, which :meth:`AuditLog.verify` also accepts for entries written before."""
    try:
        return canonical_json(obj)
    except ValueError:
        return legacy_json(obj)


@dataclass(frozen=True)
class AuditEntry:
    index: int
    actor: str
    action: str
    target: str
    outcome: str
    timestamp: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "timestamp": self.timestamp,
            "details": dict(self.details),
        }

    def leaf_data(self) -> bytes:
        return leaf_encoding(self.to_dict())

    def leaf_forms(self) -> tuple[bytes, ...]:
        """Every encoding a stored leaf of this entry may have: RFC 8785, or the pre-issue-13 JSON."""
        return canonical_forms(self.to_dict())

    def matches_leaf(self, data: bytes) -> bool:
        """Whether ``data`` is one of :meth:`leaf_forms` (the C-speed legacy encoding is tried first: for
        entries without floats or astral characters it is the same bytes as RFC 8785)."""
        obj = self.to_dict()
        try:
            if legacy_json(obj) == data:
                return True
        except (TypeError, ValueError):
            pass
        return data in canonical_forms(obj)

    @classmethod
    def from_leaf(cls, data: bytes) -> AuditEntry:
        try:
            obj = json.loads(data)
            return cls(
                index=int(obj["index"]),
                actor=str(obj["actor"]),
                action=str(obj["action"]),
                target=str(obj["target"]),
                outcome=str(obj["outcome"]),
                timestamp=str(obj["timestamp"]),
                details=dict(obj["details"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError("audit log: an entry is not valid canonical JSON") from exc


@dataclass(frozen=True)
class SignedTreeHead:
    size: int
    root_hash: bytes
    timestamp: str
    signature: bytes

    def signed_data(self) -> bytes:
        return tree_head_data(self.size, self.root_hash, self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": LOG_ID,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "timestamp": self.timestamp,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> SignedTreeHead:
        try:
            return cls(
                size=int(obj["size"]),
                root_hash=bytes.fromhex(obj["root_hash"]),
                timestamp=str(obj["timestamp"]),
                signature=bytes.fromhex(obj["signature"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError("not a valid signed tree head") from exc


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root_hash: bytes

    def verify(self) -> None:
        merkle.verify_inclusion(
            leaf=self.leaf_hash, index=self.index, size=self.tree_size, path=self.path, root=self.root_hash
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [p.hex() for p in self.path],
            "root_hash": self.root_hash.hex(),
        }


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> None:
        merkle.verify_consistency(
            old_size=self.old_size,
            new_size=self.new_size,
            old_root=self.old_root,
            new_root=self.new_root,
            path=self.path,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "path": [p.hex() for p in self.path],
        }


@dataclass(frozen=True)
class WitnessCheck:
    """One witness's view: the largest head it holds (0: none yet), checked consistent with the log."""

    witness: str
    size: int
    heads: int

    def to_dict(self) -> dict[str, Any]:
        return {"witness": self.witness, "size": self.size, "heads": self.heads}


@dataclass(frozen=True)
class LogVerification:
    size: int
    root_hash: bytes
    heads_checked: int
    witnesses: tuple[WitnessCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "heads_checked": self.heads_checked,
            "witnesses": [w.to_dict() for w in self.witnesses],
            "witnessed_size": max((w.size for w in self.witnesses), default=0),
        }


def tree_head_data(size: int, root_hash: bytes, timestamp: str) -> bytes:
    return canonical_json({"log": LOG_ID, "size": size, "root_hash": root_hash.hex(), "timestamp": timestamp})


__all__ = [
    "LOG_ID",
    "OUTCOMES",
    "AuditEntry",
    "ConsistencyProof",
    "InclusionProof",
    "LogVerification",
    "SignedTreeHead",
    "WitnessCheck",
    "canonical_json",
    "leaf_encoding",
    "tree_head_data",
]
