"""Which evidence the policy gate counts: only what bastion itself produced and can authenticate.

A version's annotations and push metadata are written by whoever may annotate or push it (an ml-engineer
may do both), so none of them is evidence by itself (issue 11, F2). The gate counts:

- **scan** — the push record the vault wrote to the signed audit log (``registry:push`` and whether it was
  ``allow_unsafe``). The ``scan`` annotation namespace is reserved to the vault; an old ``scan`` annotation
  is ignored.
- **audit** — an ``audit`` annotation carrying an attestation: HMAC-SHA256 (the key ring's row-sealing key,
  :class:`~bastion.crypto.seal.RowSealer`, kind ``audit-annotation``) over ``NAME:VERSION`` and the digest of
  the summary, made by :func:`attest_audit` in the code path that ran the audit with the key ring open
  (``bastion audit … --model registry:…`` in local mode or on the server). A hand-written one does not verify.
- **watermark** — a ``watermark`` annotation whose commitment was logged by
  :func:`bastion.watermark.commitment.log_commitment` (a ``watermark:embed`` entry of the signed log).
- **ε** — the metadata's ``spend_id`` must name a ``privacy:train`` log entry of a private run *and* a
  ``privacy.settle`` entry of the privacy ledger; the larger of the two ε counts, never the metadata's own.
- **training data** (BST-P007) — the inputs of a ``privacy.train`` lineage run that wrote this registry
  version (what ``bastion train --push`` records), never a digest from free metadata.

The log is read as bastion (the caller sees the verdict, not the log). The gate does not re-verify the whole
tree on every promotion: a database writer who inserts log rows is caught by ``bastion log verify`` (run it
with the witnesses given from outside the home, see the README), not by the gate.

Separation of duties: evidence is authenticated as *made by bastion*, not as made by someone other than the
promoter. An identity holding ``audit:run`` and ``registry:promote`` can still audit and promote its own
model (the audit is real). Where duties must be separated, give auditing and promotion to different roles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import AccessDenied, BastionError, IntegrityError

AUDIT_SEAL_KIND = "audit-annotation"
ATTESTATION_KEY = "attestation"
_WATERMARK_ACTION = "watermark:embed"  # bastion.watermark.commitment.AUDIT_ACTION


@dataclass(frozen=True)
class LogEvidence:
    """What the verified audit log says bastion did (empty when the log could not be read or verified)."""

    pushes: Mapping[str, bool] | None = None  # NAME:VERSION -> pushed with allow_unsafe
    commitments: frozenset[str] = frozenset()
    trained: Mapping[str, float] = field(default_factory=dict)  # spend_id -> ε of a private training run
    settled: Mapping[str, float] = field(default_factory=dict)  # spend_id -> ε settled by the ledger

    def epsilon(self, spend_id: Any) -> float | None:
        """The ε bastion recorded for ``spend_id`` (training run and ledger both), else None."""
        if not isinstance(spend_id, str) or spend_id not in self.trained or spend_id not in self.settled:
            return None
        return max(self.trained[spend_id], self.settled[spend_id])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def log_evidence(vault: Any) -> LogEvidence:
    """Read the signed audit log once, as bastion (not as the caller: the verdict, not the log, is shown)."""
    ctx = getattr(vault, "context", None)
    try:
        # a remote client: its server evaluates the gate; here only what the caller may read
        entries = ctx.audit.entries() if ctx is not None else vault.log_entries()
    except (AccessDenied, IntegrityError):
        return LogEvidence()
    pushes: dict[str, bool] = {}
    commitments: set[str] = set()
    trained: dict[str, float] = {}
    settled: dict[str, float] = {}
    for e in entries:
        if e.outcome != "ok":
            continue
        d = e.details
        if e.action == "registry:push" and ":" in e.target:
            pushes[e.target] = bool(d.get("allow_unsafe"))
        elif e.action == _WATERMARK_ACTION and isinstance(d.get("commitment"), str):
            commitments.add(d["commitment"])
        elif e.action == "privacy:train" and d.get("private") and isinstance(d.get("spend_id"), str):
            eps = _number(d.get("epsilon"))
            if eps is not None:
                trained[d["spend_id"]] = eps
        elif e.action == "privacy.settle" and isinstance(d.get("spend_id"), str):
            eps = _number(d.get("epsilon"))
            if eps is not None:
                settled[d["spend_id"]] = eps
    return LogEvidence(pushes=pushes, commitments=frozenset(commitments), trained=trained, settled=settled)


def _summary_digest(data: Mapping[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != ATTESTATION_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def attest_audit(vault: Any, ref: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` with an attestation binding it to ``ref`` (exactly ``NAME:VERSION``).

    Needs the key ring (a local :class:`~bastion.vault.Vault`, or the server); raises AccessDenied otherwise.
    """
    ctx = getattr(vault, "context", None)
    if ctx is None:
        raise AccessDenied("an audit is attested only where the key ring is open (local mode or the server)")
    mac = ctx.sealer.seal(AUDIT_SEAL_KIND, ref, {"sha256": _summary_digest(summary)})
    body = {k: v for k, v in summary.items() if k != ATTESTATION_KEY}
    return {**body, ATTESTATION_KEY: {"alg": "hmac-sha256", "mac": mac.hex()}}


def audit_attested(vault: Any, ref: str, data: Mapping[str, Any]) -> bool:
    """True when ``data`` carries a valid attestation for ``ref`` made with this home's key ring."""
    ctx = getattr(vault, "context", None)
    att = data.get(ATTESTATION_KEY)
    if ctx is None or not isinstance(att, Mapping) or not isinstance(att.get("mac"), str):
        return False
    try:
        given = bytes.fromhex(att["mac"])
        want = ctx.sealer.seal(AUDIT_SEAL_KIND, ref, {"sha256": _summary_digest(data)})
    except (ValueError, TypeError, BastionError):
        return False
    return hmac.compare_digest(given, want)


def training_roots(vault: Any) -> dict[str, tuple[str, ...]]:
    """``NAME:VERSION`` -> digests of the data a bastion training run (``privacy.train`` lineage) read to
    produce it."""
    from bastion.store.lineage import REGISTRY_NAMESPACE, list_events

    try:
        events = list_events(vault.engine, job="privacy.train")
    except (BastionError, AttributeError):
        return {}
    roots: dict[str, list[str]] = {}
    for ev in events:
        # bare hex, as the version metadata had them (``sha256:`` is the only algorithm bastion records)
        digests = [str(i.digest).removeprefix("sha256:") for i in ev.inputs if i.digest]
        for o in ev.outputs:
            if o.namespace == REGISTRY_NAMESPACE:
                have = roots.setdefault(o.name, [])
                have.extend(d for d in digests if d not in have)
    return {k: tuple(v) for k, v in roots.items()}


__all__ = [
    "ATTESTATION_KEY",
    "AUDIT_SEAL_KIND",
    "LogEvidence",
    "attest_audit",
    "audit_attested",
    "log_evidence",
    "training_roots",
]
