"""FastAPI dependencies every router uses: the shared state, the caller's identity, the caller's vault."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bastion.access import Identity
from bastion.serve.connections import client_host
from bastion.server.state import ServerState
from bastion.vault import Vault


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.bastion
    return state


def caller_identity(request: Request) -> Identity:
    """The identity of the request's bearer token (401 otherwise); checked on every request, by the app's
    ASGI guard before the body is read (:class:`bastion.server.app.BodyLimit`), or here without it."""
    known = request.scope.get("bastion.identity")
    if isinstance(known, Identity):
        return known
    address = client_host(request.client)
    return server_state(request).admitted(request.headers.get("authorization"), address=address)


def caller_vault(request: Request, identity: Annotated[Identity, Depends(caller_identity)]) -> Vault:
    """The project's Vault acting as the caller: its own checks and audit entries, as in local mode."""
    return server_state(request).vault_for(identity)


ServerStateDep = Annotated[ServerState, Depends(server_state)]
CallerIdentity = Annotated[Identity, Depends(caller_identity)]
CallerVault = Annotated[Vault, Depends(caller_vault)]

__all__ = [
    "CallerIdentity",
    "CallerVault",
    "ServerStateDep",
    "caller_identity",
    "caller_vault",
    "server_state",
]
