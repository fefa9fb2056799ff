"""Request records of remote gateways into the server's audit log (issue 17 M2c): ``POST /v1/gateway/audit``.

A gateway started with ``bastion serve MODEL --server URL`` has no audit log of its own. Its batched writer
(:class:`bastion.serve.observability.BatchedAuditWriter`, one ``serve:requests`` entry per batch of requests,
plus its security events) appends through :class:`bastion.client.gateway.RemoteAuditSink`, which posts each
entry here, so ``bastion events`` / ``bastion hunt`` / ``bastion respond`` see team-mode traffic the way they
see a home gateway's.

What a gateway may write, checked before anything is appended:

- only ``gateway``-role identities, and only for a ``NAME:VERSION`` this server process released to that
  identity by attested release (its token alone, without the attester key and an approved configuration,
  writes nothing);
- only the actions a gateway writes (:data:`ACTIONS`), at most :data:`MAX_ENTRIES` entries a call, outcome
  ``ok``/``denied``/``error``;
- the entry's actor is the gateway identity (never a name it chooses).

The records' contents (who called, from where, with what decision) are the gateway's word: it is the
enforcement point for its model, trusted for that model's traffic and nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bastion.errors import AccessDenied
from bastion.server.deps import CallerIdentity, ServerStateDep

router = APIRouter()

ACTIONS = frozenset({"serve:requests", "serve:monitor-flag", "serve:theft-flag", "serve:drift-alert"})
MAX_ENTRIES = 100


class AuditEntryBody(BaseModel):
    action: str = Field(max_length=64)
    target: str = Field(max_length=400)
    outcome: str = Field(pattern="^(ok|denied|error)$")
    details: dict[str, Any] = Field(default_factory=dict)


class AuditBody(BaseModel):
    entries: list[AuditEntryBody] = Field(max_length=MAX_ENTRIES)


@router.post("/gateway/audit")
def append(state: ServerStateDep, identity: CallerIdentity, body: AuditBody) -> dict[str, int]:
    if identity.role != "gateway":
        raise AccessDenied(
            f"{identity.name} ({identity.role}) is not a gateway: it may not write gateway records"
        )
    for entry in body.entries:
        if entry.action not in ACTIONS:
            raise AccessDenied(f"a gateway may not write {entry.action!r} entries")
        if not state.was_released(identity, entry.target):
            raise AccessDenied(
                f"{entry.target} was not released to {identity.name} by this server: no records for it"
            )
    audit = state.base.audit
    for entry in body.entries:
        audit.append(
            actor=identity.name,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            details=entry.details,
        )
    return {"written": len(body.entries)}
