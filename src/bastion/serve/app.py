"""The gateway's ASGI app: OIP v2 routes behind authentication, rate limits, guards and the monitor.

:func:`create_app` only wires the parts together: the :class:`~bastion.serve.gateway.Gateway` goes on
``app.state`` (the routers take it, and the caller's identity, through FastAPI dependencies in
:mod:`bastion.serve.deps`); the routers, one per concern (:mod:`bastion.serve.routers`: health and metrics,
inference, admin); the error handlers (a bastion error becomes its documented status with a one-line JSON
message, never a traceback); and the :class:`~bastion.serve.middleware.GatewayMiddleware`, which does what
every protected request needs (header checks, body limit, address limit, authentication, identity limit,
audit slot and record, metrics, log line) once, before any route.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.routing import Route

from bastion import __version__
from bastion.errors import BastionError, RowLimitExceeded
from bastion.serve.gateway import Gateway, ServedModel
from bastion.serve.middleware import PUBLIC_PATHS, GatewayMiddleware
from bastion.serve.protocol import InferenceRequest
from bastion.serve.replies import error_response, status_of
from bastion.serve.routers import admin, health, inference


async def _row_limit(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RowLimitExceeded)
    headers = {"Retry-After": str(exc.retry_after_s), "X-RateLimit-Limit": exc.limit}
    return error_response(429, str(exc), headers)


async def _bastion_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BastionError)
    status = status_of(exc)
    request.state.decision = getattr(request.state, "decision", None) or f"error:{type(exc).__name__}"
    return error_response(status, str(exc) if status < 500 else "internal error")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    request.state.decision = "reject:input"
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(400, f"invalid request: {where}: {first.get('msg', 'malformed')}"[:300])


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            request_schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["InferenceRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def create_app(gateway: Gateway) -> FastAPI:
    """The FastAPI app for one gateway (OpenAPI at /openapi.json; no interactive docs)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            gateway.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bastion gateway",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    app.add_exception_handler(RowLimitExceeded, _row_limit)
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    routers = (health.router, inference.router, admin.router)
    for router in routers:
        app.include_router(router)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    # The middleware labels metrics by route template: the app's own routes (openapi) and each router's
    # (FastAPI keeps an included router as one entry of ``app.routes``, not as its routes).
    routes = [r for r in app.routes if isinstance(r, Route)] + [r for rt in routers for r in rt.routes]
    app.add_middleware(GatewayMiddleware, gateway=gateway, routes=routes)  # type: ignore[arg-type]
    return app


__all__ = ["PUBLIC_PATHS", "Gateway", "GatewayMiddleware", "RowLimitExceeded", "ServedModel", "create_app"]
