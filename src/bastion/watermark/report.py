"""Signed ownership reports: the evidence an owner hands to a third party in a dispute.

A report binds, under the project's Ed25519 key (the one that signs the audit log's tree heads):

* the verification result (suspect, trigger accuracy, p-value, verdict);
* the watermark record (key id, trigger spec, trigger-set digest, commitment);
* the audit-log entry that logged the commitment at embedding time, its RFC 6962 inclusion proof and the
  signed tree head it leads to — so the commitment provably predates the report.

:func:`verify_report` checks all of it with the public key alone (pass the owner's key obtained out of band
as ``public_key_pem``; otherwise the key embedded in the report is used and the result says so). Given the
watermark key (revealed in the dispute) it also checks that the key opens the commitment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.crypto.canonical import canonical_forms, canonical_json, legacy_json
from bastion.crypto.signing import Ed25519Verifier
from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.files import atomic_write
from bastion.store import merkle
from bastion.store.auditlog import AuditEntry, InclusionProof, SignedTreeHead
from bastion.watermark.commitment import AUDIT_ACTION, WatermarkRecord
from bastion.watermark.keys import WatermarkKey
from bastion.watermark.verify import Verification, binomial_p_value, verdict_for

REPORT_FORMAT = "bastion-ownership-report/v1"
MAX_REPORT_BYTES = 4 << 20


@dataclass(frozen=True)
class OwnershipReport:
    """A signed report: ``body`` (canonical JSON is what is signed) and the Ed25519 ``signature``."""

    body: Mapping[str, Any]
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"report": dict(self.body), "signature": self.signature.hex()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        atomic_write(out, json.dumps(self.to_dict(), indent=2, sort_keys=True).encode() + b"\n", mode=0o644)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OwnershipReport:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no ownership report {src}")
        if src.stat().st_size > MAX_REPORT_BYTES:
            raise InvalidInput(f"{src}: not an ownership report (too large)")
        try:
            doc = json.loads(src.read_text(encoding="utf-8"))
            body = doc["report"]
            signature = bytes.fromhex(doc["signature"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{src}: not an ownership report") from exc
        if not isinstance(body, dict) or body.get("format") != REPORT_FORMAT:
            raise InvalidInput(f"{src}: not an ownership report")
        return cls(body=body, signature=signature)


@dataclass(frozen=True)
class ReportCheck:
    """What :func:`verify_report` established."""

    commitment: str
    key_id: str
    suspect: str
    verdict: str
    p_value: float
    trigger_accuracy: float
    audit_index: int
    logged_at: str
    trusted_key: bool
    key_opened: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": True,
            "commitment": self.commitment,
            "key_id": self.key_id,
            "suspect": self.suspect,
            "verdict": self.verdict,
            "p_value": self.p_value,
            "trigger_accuracy": self.trigger_accuracy,
            "audit_index": self.audit_index,
            "logged_at": self.logged_at,
            "trusted_key": self.trusted_key,
            "key_opened": self.key_opened,
        }


def build_report(
    *,
    vault: Any,
    record: WatermarkRecord,
    verification: Verification,
    suspect: str,
    now: Callable[[], dt.datetime] | None = None,
) -> OwnershipReport:
    """Sign a report for ``verification`` of ``record``'s watermark (needs ``log:read`` for the proof)."""
    if record.audit_index is None:
        raise InvalidInput(
            "this watermark's commitment was never written to the audit log: no report possible"
        )
    if verification.commitment not in (None, record.commitment) or verification.key_id != record.key_id:
        raise InvalidInput("the verification does not belong to this watermark record")
    proof = vault.log_prove(record.audit_index)
    head = vault.log_head()
    entries = vault.log_entries(start=record.audit_index, limit=1)
    if not entries:
        raise IntegrityError(f"audit entry {record.audit_index} is missing")
    entry = entries[0]
    if entry.action != AUDIT_ACTION or entry.details.get("commitment") != record.commitment:
        raise IntegrityError(f"audit entry {record.audit_index} does not hold this watermark's commitment")
    stamp = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat()
    result = {**verification.to_dict(), "commitment": record.commitment}
    body = {
        "format": REPORT_FORMAT,
        "created_at": stamp,
        "issuer": vault.identity.name,
        "suspect": suspect,
        "verification": result,
        "record": record.to_dict(),
        "audit": {"entry": entry.to_dict(), "inclusion_proof": proof.to_dict(), "tree_head": head.to_dict()},
        "public_key": vault.signer.public_key_pem(),
    }
    signature = vault.signer.sign(canonical_json(body))
    vault.audit.append(
        actor=vault.identity.name,
        action="watermark:report",
        target=suspect,
        outcome="ok",
        details={
            "commitment": record.commitment,
            "verdict": verification.verdict,
            "p_value": verification.p_value,
        },
    )
    return OwnershipReport(body=body, signature=bytes(signature))


def _proof(data: Mapping[str, Any]) -> InclusionProof:
    try:
        return InclusionProof(
            index=int(data["index"]),
            tree_size=int(data["tree_size"]),
            leaf_hash=bytes.fromhex(data["leaf_hash"]),
            path=tuple(bytes.fromhex(p) for p in data["path"]),
            root_hash=bytes.fromhex(data["root_hash"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError("ownership report: malformed inclusion proof") from exc


def _verify_any(verifier: Ed25519Verifier, forms: tuple[bytes, ...], signature: bytes) -> None:
    """The signature must verify over one of the accepted encodings of the body (IntegrityError if none)."""
    for form in forms[:-1]:
        try:
            verifier.verify(form, signature)
            return
        except IntegrityError:
            continue
    if not forms:
        raise IntegrityError("ownership report: the body is not JSON")
    verifier.verify(forms[-1], signature)


def verify_report(
    report: OwnershipReport, *, public_key_pem: str | bytes | None = None, key: WatermarkKey | None = None
) -> ReportCheck:
    """Check signature, log inclusion and commitment of a report; failures raise IntegrityError."""
    body = report.body
    embedded = body.get("public_key")
    pem = public_key_pem if public_key_pem is not None else embedded
    if not isinstance(pem, str | bytes):
        raise IntegrityError("ownership report: no public key")
    verifier = Ed25519Verifier.from_pem(pem)
    _verify_any(verifier, canonical_forms(dict(body)), report.signature)  # RFC 8785, or a pre-RFC report
    try:
        audit = body["audit"]
        head = SignedTreeHead.from_dict(audit["tree_head"])
        # parsed from a type-preserving encoding (1.0 stays a float), so both leaf forms can be rebuilt
        entry = AuditEntry.from_leaf(legacy_json(audit["entry"]))
        proof = _proof(audit["inclusion_proof"])
        record = WatermarkRecord.from_dict(body["record"])
        result = body["verification"]
        hits, queries, chance = int(result["hits"]), int(result["queries"]), float(result["chance"])
        p_value, verdict = float(result["p_value"]), str(result["verdict"])
        suspect = str(body["suspect"])
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError("ownership report: malformed content") from exc
    verifier.verify(head.signed_data(), head.signature)
    if proof.leaf_hash not in {merkle.leaf_hash(form) for form in entry.leaf_forms()}:
        raise IntegrityError("ownership report: the audit entry does not match the inclusion proof")
    if proof.root_hash != head.root_hash or proof.tree_size != head.size or proof.index != entry.index:
        raise IntegrityError("ownership report: the inclusion proof does not lead to the signed tree head")
    proof.verify()
    if entry.action != AUDIT_ACTION or entry.details.get("commitment") != record.commitment:
        raise IntegrityError("ownership report: the logged entry does not hold the commitment")
    if record.audit_index != entry.index or result.get("commitment") != record.commitment:
        raise IntegrityError("ownership report: the record, the result and the log entry disagree")
    expected_p = binomial_p_value(hits, queries, chance)
    if abs(expected_p - p_value) > 1e-9 * max(1.0, expected_p) or verdict_for(p_value) != verdict:
        raise IntegrityError("ownership report: the p-value or verdict does not follow from the hits")
    if key is not None:
        record.check_opens(key)
    return ReportCheck(
        commitment=record.commitment,
        key_id=record.key_id,
        suspect=suspect,
        verdict=verdict,
        p_value=p_value,
        trigger_accuracy=hits / queries if queries else 0.0,
        audit_index=entry.index,
        logged_at=entry.timestamp,
        trusted_key=public_key_pem is not None,
        key_opened=key is not None,
    )


__all__ = ["REPORT_FORMAT", "OwnershipReport", "ReportCheck", "build_report", "verify_report"]
