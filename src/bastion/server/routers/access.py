"""Identities and tokens: ``/v1/access/*`` and ``/v1/tokens*`` (each call checked by AccessControl)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bastion.server.deps import CallerVault

router = APIRouter()


class Scopes(BaseModel):
    name: str = Field(max_length=200)
    role: str | None = Field(default=None, max_length=64)
    models: list[str] = Field(default_factory=list, max_length=256)
    envs: list[str] = Field(default_factory=list, max_length=16)


class TokenRequest(Scopes):
    role: str = Field(max_length=64)  # type: ignore[assignment]


@router.post("/access/grant")
def grant(vault: CallerVault, body: Scopes) -> dict[str, Any]:
    return vault.access.grant(name=body.name, role=body.role, models=body.models, envs=body.envs).to_dict()


@router.post("/access/revoke")
def revoke(vault: CallerVault, body: Scopes) -> dict[str, Any]:
    return vault.access.revoke_scopes(name=body.name, models=body.models, envs=body.envs).to_dict()


@router.get("/access/identities")
def identities(vault: CallerVault) -> list[dict[str, Any]]:
    return [i.to_dict() for i in vault.access.list_identities()]


@router.post("/tokens")
def create_token(vault: CallerVault, body: TokenRequest) -> dict[str, Any]:
    ident, secret = vault.create_token(name=body.name, role=body.role, models=body.models, envs=body.envs)
    return {"identity": ident.to_dict(), "token": secret}


@router.get("/tokens")
def list_tokens(vault: CallerVault) -> list[dict[str, Any]]:
    return [t.to_dict() for t in vault.access.list_tokens()]


@router.post("/tokens/{token_id}/revoke")
def revoke_token(vault: CallerVault, token_id: str) -> dict[str, Any]:
    vault.access.revoke_token(token_id)
    return {"revoked": token_id}
