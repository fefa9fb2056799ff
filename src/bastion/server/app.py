"""The server's FastAPI app: every router of :mod:`bastion.server.routers` under ``/v1``, errors as JSON."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI

from bastion import __version__
from bastion.errors import BastionError, InvalidInput
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
# Endpoints that read their body in bounded chunks (bounded by ServerSettings.max_upload_bytes instead).
STREAMED_PATHS = frozenset({"/v1/registry/push", "/v1/data/protect", "/v1/data/reveal-table"})
IDENTITY_KEY = "bastion.identity"  # where the guard leaves the authenticated identity in the ASGI scope


class BodyLimit:
    """ASGI guard in front of every route. A ``/v1`` request is authenticated from its bearer token *before*
    any byte of its body is read (401/429 otherwise, the body left unread), so an anonymous caller can make
    the server buffer nothing. Then the body is capped by the bytes actually received (and the declared
    length): ``limit`` for every path but the ``streamed`` ones (by path only, whatever the content type),
    which are capped at the server's ``max_upload_bytes`` plus the tar framing and stream to disk."""

    def __init__(self, app: Any, *, limit: int, streamed: frozenset[str]) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed

    @property
    def state(self) -> Any:  # tests and the server reach the FastAPI app's state through the wrapper
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        path = scope.get("path") or ""
        if path == "/v1" or path.startswith("/v1/"):
            state = self.app.state.bastion
            client = scope.get("client")
            address = str(client[0]) if client else "-"
            header = headers.get(b"authorization")
            try:
                identity = await asyncio.get_running_loop().run_in_executor(
                    None,
                    lambda: state.admitted(
                        None if header is None else header.decode("latin-1"), address=address
                    ),
                )
            except BastionError as exc:
                await _send_error(send, exc)
                return
            scope[IDENTITY_KEY] = identity
        limit = self.limit
        if path in self.streamed:
            s = self.app.state.bastion.settings
            limit = s.max_upload_bytes + 4096 * s.max_upload_files + (8 << 20)  # the files + tar headers
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_error(send, _too_large(limit), status=413)
            return
        seen = 0
        started = refused = False

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if refused:  # our 413 went out: whatever the endpoint makes of the cut body is dropped
                return
            started = started or message.get("type") == "http.response.start"
            await send(message)

        async def bounded() -> Any:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # counted as received: a chunked body declares nothing
                if not started and not refused:
                    await _send_error(send, _too_large(limit), status=413)
                    refused = True
                return {"type": "http.disconnect"}  # the endpoint stops reading here
            return message

        try:
            await self.app(scope, bounded, guarded_send)
        except Exception:
            if not refused:
                raise


def _too_large(limit: int) -> InvalidInput:
    return InvalidInput(f"request body larger than {limit} bytes")


async def _send_error(send: Any, exc: BastionError, *, status: int | None = None) -> None:
    response = errors.error_response(exc)
    start = {"type": "http.response.start", "status": status or response.status_code}
    await send({**start, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


__all__ = ["create_server_app"]
