"""The routers the server mounts under ``/v1``: add a module here (one line) and it is served.

Each module defines ``router: fastapi.APIRouter`` and takes its caller through :mod:`bastion.server.deps`
(``CallerVault``, ``CallerIdentity``, ``ServerStateDep``). Raise :mod:`bastion.errors` classes; the app turns
them into ``{"error", "message"}`` responses.
"""

from __future__ import annotations

import importlib
from typing import Any

ROUTER_MODULES: list[str] = [
    "meta",  # whoami
    "registry",  # push, pull, list, show, verify, promote, annotate, annotations
    "access",  # identities and tokens
    "keys",  # list, rotate, retire
    "log",  # verify, head, prove, consistency, entries, key
    "data",  # protect, reveal, reveal-table
    "ledger",  # privacy budgets: list, show, set
    "gateway",  # attested model release to gateway identities: challenge, pull
    "respond",  # the signed response state, for remote gateways
    "gateway_audit",  # remote gateways' request records into the audit log
]


def routers() -> list[Any]:
    """The ``router`` of every module in :data:`ROUTER_MODULES`, in order."""
    return [importlib.import_module(f"{__name__}.{name}").router for name in ROUTER_MODULES]


__all__ = ["ROUTER_MODULES", "routers"]
