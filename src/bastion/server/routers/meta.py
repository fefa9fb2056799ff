"""``GET /v1/whoami``: the identity the caller's token names (the CLI's ``bastion login`` checks it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bastion.server.deps import CallerIdentity

router = APIRouter()


@router.get("/whoami")
def whoami(identity: CallerIdentity) -> dict[str, Any]:
    return identity.to_dict()
