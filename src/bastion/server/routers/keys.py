"""Key-encryption keys: ``/v1/keys`` (list), ``/v1/keys/rotate``, ``/v1/keys/retire``, ``/v1/keys/users``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bastion.server.deps import CallerVault

router = APIRouter()


class Rotate(BaseModel):
    env: str = Field(max_length=32)


class Retire(BaseModel):
    env: str = Field(max_length=32)
    version: int


@router.get("/keys")
def list_keys(vault: CallerVault) -> list[dict[str, Any]]:
    return [k.to_dict() for k in vault.list_keys()]


@router.post("/keys/rotate")
def rotate(vault: CallerVault, body: Rotate) -> dict[str, Any]:
    return vault.rotate_keys(env=body.env).to_dict()


@router.post("/keys/retire")
def retire(vault: CallerVault, body: Retire) -> dict[str, Any]:
    vault.retire_key(env=body.env, version=body.version)
    return {"retired": f"{body.env}/v{body.version}"}
