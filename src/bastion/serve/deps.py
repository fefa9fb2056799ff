"""FastAPI dependencies of the gateway's routers: the gateway itself and the authorisation checks.

The middleware has already authenticated every non-public request (``request.state.identity``); these
dependencies authorise it (deny by default: 401 without an identity, 403 for an identity without the
permission, 404 for a model this gateway does not serve) before the route body runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from bastion.access import Identity, allowed
from bastion.errors import AccessDenied, AuthenticationFailed, NotFound
from bastion.serve.gateway import Gateway

ADMIN_READ = ("serve:admin", "log:read")  # admin and auditor
ADMIN_WRITE = ("serve:admin",)


async def get_gateway(request: Request) -> Gateway:
    """The gateway this app was created for (``create_app`` puts it on ``app.state``)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def identity_of(request: Request) -> Identity:
    identity = getattr(request.state, "identity", None)
    if identity is None:  # the middleware authenticates every non-public path
        raise AuthenticationFailed("missing credentials")
    return identity  # type: ignore[no-any-return]


def _deny(request: Request, gw: Gateway, message: str) -> AccessDenied:
    request.state.decision = "deny:role"
    gw.metrics.denials.labels("role").inc()
    return AccessDenied(message)


def served(permission: str) -> Callable[[str, Request, Gateway], Awaitable[Identity]]:
    """A dependency: the caller holds ``permission`` on the path's model, and this gateway serves it."""

    async def dependency(name: str, request: Request, gw: GatewayDep) -> Identity:
        identity = identity_of(request)
        if not allowed(identity, permission, model=name, env=gw.model.env):
            raise _deny(request, gw, f"{identity.role} may not {permission} on {name}")
        if name != gw.model.name:
            raise NotFound(f"model {name!r} is not served here")
        return identity

    return dependency


def admin(permissions: tuple[str, ...]) -> Callable[[Request, Gateway], Awaitable[Identity]]:
    """A dependency: the caller holds any one of ``permissions`` (the admin and metrics endpoints)."""

    async def dependency(request: Request, gw: GatewayDep) -> Identity:
        identity = identity_of(request)
        if any(allowed(identity, p) for p in permissions):
            return identity
        raise _deny(request, gw, f"{identity.role} may not use the admin endpoints")

    return dependency


CanInfer = Annotated[Identity, Depends(served("model:infer"))]
CanReadMetadata = Annotated[Identity, Depends(served("model:metadata"))]
AdminReader = Annotated[Identity, Depends(admin(ADMIN_READ))]
AdminWriter = Annotated[Identity, Depends(admin(ADMIN_WRITE))]

__all__ = [
    "ADMIN_READ",
    "ADMIN_WRITE",
    "AdminReader",
    "AdminWriter",
    "CanInfer",
    "CanReadMetadata",
    "GatewayDep",
    "admin",
    "get_gateway",
    "identity_of",
    "served",
]
