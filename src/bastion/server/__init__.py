"""``bastion server``: the control plane over HTTPS, the only process holding the key ring and the database.

Team mode (issue 11): users, CI and gateways hold tokens; the server opens the project home once (key ring,
signing keys, database, blob store, audit log) and answers each request as the identity its ``Authorization:
Bearer`` token (or JWT, where ``[serve.jwt]`` is configured) names. Each request gets its own
:class:`~bastion.vault.Vault` built from the shared components with that identity, so every permission check
and every audit-log entry is exactly the one local mode writes for the same identity
(:mod:`bastion.server.state`). Errors travel as ``{"error": "<BastionError subclass>", "message": "..."}``
with a status code (:mod:`bastion.server.errors`); never a traceback, never a secret.

The gateway is a **separate process** (``bastion serve``), not mounted here: the server holds every KEK and
the database, the gateway serves one model to the network with untrusted inputs. Keeping them apart means a
compromised gateway process holds at most the one model it serves, never the key ring; the k8s output
deploys them as separate workloads.

Plug point (for new routers): a module under :mod:`bastion.server.routers` defines ``router =
APIRouter()`` with its endpoints, taking the caller through the dependencies of :mod:`bastion.server.deps`::

    from fastapi import APIRouter
    from bastion.server.deps import CallerVault

    router = APIRouter()

    @router.post("/data/protect")
    def protect(vault: CallerVault, body: dict) -> dict: ...

and is listed (one line) in :data:`bastion.server.routers.ROUTER_MODULES`; the app mounts every listed
router under ``/v1``. ``CallerIdentity`` gives the authenticated :class:`~bastion.access.Identity` alone and
``ServerStateDep`` the shared state (settings, spool directory). Sync endpoints run in the threadpool, which
is what the vault's blocking calls need.

Push and pull stream ``application/x-tar`` (:mod:`bastion.server.tarstream`): one tar per call, so a
directory of many files is one request, and both sides read and write it in bounded chunks (constant memory).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "ServerState", "create_server_app"]


def __getattr__(name: str) -> Any:  # lazy: the client imports bastion.server.tarstream without FastAPI
    if name == "create_server_app":
        from bastion.server.app import create_server_app

        return create_server_app
    if name in ("ServerSettings", "ServerState"):
        from bastion.server import state

        return getattr(state, name)
    raise AttributeError(name)
