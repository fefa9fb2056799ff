"""The audit log (``log:read``): ``/v1/log/verify|head|prove|consistency|entries|key``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from bastion.server.deps import CallerVault
from bastion.store.auditlog import SignedTreeHead

router = APIRouter()


class VerifyRequest(BaseModel):
    trusted: dict[str, Any] | None = None


@router.post("/log/verify")
def verify(vault: CallerVault, body: VerifyRequest) -> dict[str, Any]:
    """As ``bastion log verify`` in local mode, the privacy ledger's cross-check included."""
    trusted = None if body.trusted is None else SignedTreeHead.from_dict(body.trusted)
    result = vault.log_verify(trusted=trusted)
    from bastion.privacy.ledger import ledger_for_vault  # a replayed ledger lost a logged spend

    ledger_for_vault(vault).cross_check_log(vault.log_entries())
    return result.to_dict()


@router.get("/log/head")
def head(vault: CallerVault) -> dict[str, Any]:
    return vault.log_head().to_dict()


@router.get("/log/prove/{index}")
def prove(vault: CallerVault, index: int) -> dict[str, Any]:
    return vault.log_prove(index).to_dict()


@router.get("/log/consistency")
def consistency(vault: CallerVault, old: int, new: int) -> dict[str, Any]:
    return vault.log_consistency(old, new).to_dict()


@router.get("/log/entries")
def entries(vault: CallerVault, start: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    return [e.to_dict() for e in vault.log_entries(start=start, limit=limit)]


@router.get("/log/key")
def key(vault: CallerVault) -> dict[str, str]:
    """The log's public key (public, but only to an authenticated caller, like every other call)."""
    return {"public_key_pem": vault.log_public_key_pem()}
