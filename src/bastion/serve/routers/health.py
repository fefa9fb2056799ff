"""The health router: liveness, readiness and server metadata (public), and Prometheus metrics (admins
and auditors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from bastion import __version__
from bastion.serve.deps import AdminReader, GatewayDep
from bastion.serve.protocol import ServerMetadata
from bastion.serve.replies import ERROR_RESPONSES

router = APIRouter()


@router.get("/v2/health/live", tags=["health"])
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready", tags=["health"])
async def ready() -> dict[str, bool]:
    return {"ready": True}


@router.get("/v2", response_model=ServerMetadata, tags=["health"])
async def server_metadata() -> dict[str, Any]:
    return {"name": "bastion", "version": __version__, "extensions": []}


@router.get("/metrics", tags=["admin"], responses=ERROR_RESPONSES)
async def metrics(gw: GatewayDep, _: AdminReader) -> Response:
    payload, content_type = gw.metrics.render()
    return Response(payload, media_type=content_type)


__all__ = ["router"]
