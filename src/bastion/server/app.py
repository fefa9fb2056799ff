"""The server's FastAPI app: every router of :mod:`bastion.server.routers` under ``/v1``, errors as JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

from bastion import __version__
from bastion.errors import InvalidInput
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
    return BodyLimit(app, limit=MAX_JSON_BODY, streamed=STREAMED_PATHS)


MAX_JSON_BODY = 16 << 20
STREAMED_PATHS = frozenset({"/v1/registry/push"})  # bounded by ServerSettings.max_upload_bytes instead


class BodyLimit:
    """ASGI wrapper: a request body over ``limit`` bytes (declared or streamed) is refused before an endpoint
    buffers it, except tar uploads (``application/x-tar``) and ``streamed`` paths: those endpoints read their
    body in bounded chunks and enforce ``ServerSettings.max_upload_bytes`` themselves."""

    def __init__(self, app: Any, *, limit: int, streamed: frozenset[str]) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed

    @property
    def state(self) -> Any:  # tests and the server reach the FastAPI app's state through the wrapper
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or ()) if scope["type"] == "http" else {}
        tar = headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/x-tar"
        if scope["type"] != "http" or tar or scope.get("path") in self.streamed:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        seen = 0

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise InvalidInput(f"request body larger than {self.limit} bytes")
            return message

        await self.app(scope, bounded, send)


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps(errors.error_body(InvalidInput(f"request body larger than {limit} bytes"))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["create_server_app"]
