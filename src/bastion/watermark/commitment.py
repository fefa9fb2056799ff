"""Commitments: proof that a watermark existed before a dispute.

At embedding time the owner computes ``commitment = SHA-256(canonical JSON of key id, trigger spec and the
trigger set's SHA-256)`` and appends it to the project's tamper-evident (RFC 6962 Merkle) audit log. Later the
owner reveals the key; anyone regenerates the trigger set, recomputes the commitment and checks the audit
entry's inclusion proof against a signed tree head (see :mod:`bastion.watermark.report`).

A :class:`WatermarkRecord` carries the commitment and where it was logged. It is written into the model's
``config.json`` metadata (``watermark``), kept in the home under ``watermark/records/`` and, when the model
was pushed, appended to the version as a ``watermark`` annotation. None of these hold the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.crypto.canonical import legacy_json
from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.watermark.keys import WatermarkKey
from bastion.watermark.triggers import TriggerSet, TriggerSpec, make_trigger_set

RECORD_FORMAT = "bastion-watermark-commitment/v1"
RECORDS_DIR = Path("watermark") / "records"
AUDIT_ACTION = "watermark:embed"
MAX_RECORD_BYTES = 1 << 20


def _canonical(obj: Any) -> bytes:
    # commitment format v1: its bytes are what commitments already logged and handed out hash (kept exactly)
    return legacy_json(obj)


def commitment_of(*, key_id: str, spec: TriggerSpec, trigger_digest: str) -> str:
    """SHA-256 (hex) of the canonical commitment body."""
    body = {
        "format": RECORD_FORMAT,
        "key_id": key_id,
        "spec": spec.to_dict(),
        "trigger_digest": trigger_digest,
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class WatermarkRecord:
    """One embedded watermark: the commitment and where it was logged (``audit_index``) and put."""

    key_id: str
    spec: TriggerSpec
    trigger_digest: str
    commitment: str
    created_at: str
    target: str | None = None
    audit_index: int | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "key_id": self.key_id,
            "spec": self.spec.to_dict(),
            "trigger_digest": self.trigger_digest,
            "commitment": self.commitment,
            "created_at": self.created_at,
            "target": self.target,
            "audit_index": self.audit_index,
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: Any) -> WatermarkRecord:
        """Parse and check that the commitment matches the fields it commits to."""
        try:
            if not isinstance(data, Mapping) or data.get("format") != RECORD_FORMAT:
                raise InvalidInput("not a watermark record")
            index = data.get("audit_index")
            record = cls(
                key_id=str(data["key_id"]),
                spec=TriggerSpec.from_dict(data["spec"]),
                trigger_digest=str(data["trigger_digest"]),
                commitment=str(data["commitment"]),
                created_at=str(data["created_at"]),
                target=None if data.get("target") is None else str(data["target"]),
                audit_index=None if index is None else int(index),
                model=None if data.get("model") is None else str(data["model"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("not a watermark record") from exc
        expected = commitment_of(key_id=record.key_id, spec=record.spec, trigger_digest=record.trigger_digest)
        if expected != record.commitment:
            raise IntegrityError("watermark record: the commitment does not match its fields")
        return record

    def audit_details(self) -> dict[str, Any]:
        """What the audit-log entry holds (no key)."""
        return {
            "commitment": self.commitment,
            "key_id": self.key_id,
            "trigger_digest": self.trigger_digest,
            "spec": self.spec.to_dict(),
        }

    def check_opens(self, key: WatermarkKey) -> TriggerSet:
        """Regenerate the trigger set with ``key`` and check it opens this commitment.

        A different key raises :class:`InvalidInput` ("wrong key"); a key that matches the id but not the
        digest raises :class:`IntegrityError`.
        """
        if key.key_id != self.key_id:
            raise InvalidInput(
                f"wrong watermark key: this watermark was made with key {self.key_id}, not {key.key_id}"
            )
        triggers = make_trigger_set(key=key, spec=self.spec)
        if triggers.digest() != self.trigger_digest:
            raise IntegrityError("the regenerated trigger set does not match the commitment")
        return triggers


def make_record(
    trigger_set: TriggerSet, *, target: str | None = None, now: Callable[[], dt.datetime] | None = None
) -> WatermarkRecord:
    """The (not yet logged) record committing to ``trigger_set``."""
    digest = trigger_set.digest()
    stamp = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat()
    return WatermarkRecord(
        key_id=trigger_set.key_id,
        spec=trigger_set.spec,
        trigger_digest=digest,
        commitment=commitment_of(key_id=trigger_set.key_id, spec=trigger_set.spec, trigger_digest=digest),
        created_at=stamp,
        target=target,
    )


def log_commitment(vault: Any, record: WatermarkRecord) -> WatermarkRecord:
    """Append ``record``'s commitment to the vault's audit log (needs ``watermark:embed``).

    The record is also kept in the home. Returns the record with ``audit_index`` set.
    """
    vault.access.check(vault.identity, "watermark:embed")
    entry = vault.audit.append(
        actor=vault.identity.name,
        action=AUDIT_ACTION,
        target=record.target or record.commitment,
        outcome="ok",
        details=record.audit_details(),
    )
    logged = dataclasses.replace(record, audit_index=int(entry.index))
    save_record(logged, home=vault.settings.home)
    return logged


def annotate_version(vault: Any, record: WatermarkRecord, ref: str) -> WatermarkRecord:
    """Append the (logged) record to registry version ``ref`` as a ``watermark`` annotation."""
    noted = dataclasses.replace(record, model=ref)
    vault.annotate(ref, namespace="watermark", data=noted.to_dict())
    save_record(noted, home=vault.settings.home)
    return noted


def save_record(record: WatermarkRecord, *, home: str | os.PathLike[str]) -> Path:
    path = Path(home) / RECORDS_DIR / f"{record.commitment}.json"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, _canonical(record.to_dict()) + b"\n", mode=0o600)
    return path


def read_record(path: str | os.PathLike[str]) -> WatermarkRecord:
    """A record from a JSON file (the ``record`` object of ``embed --format json`` or a saved record)."""
    src = Path(path)
    if not src.is_file():
        raise NotFound(f"no watermark record {src}")
    if src.stat().st_size > MAX_RECORD_BYTES:
        raise InvalidInput(f"{src}: not a watermark record (too large)")
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{src}: not a watermark record") from exc
    if isinstance(data, Mapping) and "record" in data and "format" not in data:
        data = data["record"]
    return WatermarkRecord.from_dict(data)


def home_records(home: str | os.PathLike[str], *, key_id: str | None = None) -> list[WatermarkRecord]:
    """The records kept in ``home`` (optionally only those of ``key_id``), oldest first."""
    root = Path(home) / RECORDS_DIR
    if not root.is_dir():
        return []
    out = [read_record(p) for p in sorted(root.glob("*.json"))]
    out = [r for r in out if key_id is None or r.key_id == key_id]
    return sorted(out, key=lambda r: r.created_at)


__all__ = [
    "AUDIT_ACTION",
    "WatermarkRecord",
    "annotate_version",
    "commitment_of",
    "home_records",
    "log_commitment",
    "make_record",
    "read_record",
    "save_record",
]
