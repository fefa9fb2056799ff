"""The server's FastAPI app: every router of :mod:`bastion.server.routers` under ``/v1``, errors as JSON."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from bastion import __version__
from bastion.server import errors
from bastion.server.routers import routers
from bastion.server.state import ServerSettings, ServerState


def create_server_app(
    *,
    home: str | os.PathLike[str] | None = None,
    passphrase: str | None = None,
    settings: ServerSettings | None = None,
    state: ServerState | None = None,
) -> Any:
    """The app for one project home (opened now, as its owner), or for an already opened ``state``."""
    if state is None:
        state = ServerState.open(home=home, passphrase=passphrase, settings=settings)
    app = FastAPI(
        title="bastion server", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.bastion = state
    errors.install(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers():
        app.include_router(router, prefix="/v1")
    return app


__all__ = ["create_server_app"]
