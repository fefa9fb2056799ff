"""The witness's HTTP API (FastAPI): ``GET /v1/head``, ``POST /v1/heads``, ``GET /v1/key``.

Requests are small JSON documents (bodies over 64 KiB are refused). Anyone may submit a head, but only a head
signed by the pinned log key and consistent with the held one is kept, so submitting needs the log's key and
cannot rewrite history. Refusals are HTTP 409 with a one-line ``detail``; nothing else is echoed back.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bastion.errors import BastionError, IntegrityError
from bastion.store.auditlog import SignedTreeHead
from bastion.witness.service import WitnessService

MAX_BODY = 64 * 1024


def create_app(service: WitnessService) -> Any:
    app = FastAPI(title="bastion witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/v1/head")
    def head() -> Any:
        got = service.latest()
        return {"head": None} if got is None else got.to_dict()

    @app.get("/v1/key")
    def key() -> Any:
        return {"witness_key": service.public_key_pem(), "log_key": service.log_key.public_key_pem()}

    @app.post("/v1/heads")
    async def submit(request: Request) -> Any:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"detail": "request too large"}, status_code=413)
        try:
            doc = json.loads(body)
            sth = SignedTreeHead.from_dict(doc["head"])
            raw = doc.get("consistency")
            path = None if raw is None else [bytes.fromhex(str(p)) for p in raw]
        except (ValueError, KeyError, TypeError, IntegrityError):
            return JSONResponse({"detail": "not a signed tree head submission"}, status_code=400)
        try:
            return service.submit(sth, consistency=path).to_dict()
        except IntegrityError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except BastionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    return app


__all__ = ["create_app"]
