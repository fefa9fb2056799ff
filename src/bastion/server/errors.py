"""Errors on the wire: ``{"error": "<BastionError subclass name>", "message": "...", "hint": ...}``.

The status code follows the class (401 no/invalid credentials, 403 denied, 404 not found, 409 conflict, 400
bad input, 422 a finding such as tampering, 503 an external service, 500 anything else). The client maps the
name back to the same :mod:`bastion.errors` class, so a remote command exits with the code and prints the
line local mode prints. An unexpected exception becomes a bare ``ServiceError`` ("internal server error"):
its text and traceback stay out of the response.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion import errors as E

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[E.BastionError], int], ...] = (
    (E.AuthenticationFailed, 401),
    (E.AccessDenied, 403),
    (E.NotFound, 404),
    (E.Conflict, 409),
    (E.InvalidInput, 400),
    (E.Finding, 422),
    (E.BudgetExhausted, 409),
    (E.ServiceError, 503),
)


def status_for(exc: E.BastionError) -> int:
    if getattr(exc, "retry_after_s", None) is not None:
        return 429
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: E.BastionError) -> dict[str, Any]:
    """The wire form; ``error`` is the nearest class of :mod:`bastion.errors` (what a client can rebuild)."""
    name = next(c.__name__ for c in type(exc).__mro__ if c.__name__ in E.__all__)
    body: dict[str, Any] = {"error": name, "message": str(exc)}
    if exc.hint:
        body["hint"] = exc.hint
    return body


def error_response(exc: E.BastionError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, E.AuthenticationFailed) else {}
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers or None)


def install(app: FastAPI) -> None:
    """Register the handlers: BastionError, request validation, HTTP errors and everything else."""

    async def bastion_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, E.BastionError)
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        where = ""
        if isinstance(exc, RequestValidationError) and exc.errors():
            first = exc.errors()[0]
            where = ": " + ".".join(str(p) for p in first.get("loc", ())) + f" {first.get('msg', '')}"
        return error_response(E.InvalidInput(f"malformed request{where}"[:300]))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 500)
        detail = str(getattr(exc, "detail", "")) or "request refused"
        cls: type[E.BastionError] = E.NotFound if status == 404 else E.InvalidInput
        if status == 405:
            detail = "method not allowed"
        return JSONResponse(error_body(cls(detail[:200])), status_code=status)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(error_body(E.ServiceError("internal server error")), status_code=500)

    app.add_exception_handler(E.BastionError, bastion_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


__all__ = ["error_body", "error_response", "install", "status_for"]
