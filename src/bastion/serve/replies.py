"""JSON answers and the error → status map shared by the gateway's middleware, routers and handlers."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    BastionError,
    BudgetExhausted,
    CryptoError,
    InvalidInput,
    NotFound,
    ServiceError,
)
from bastion.serve.protocol import ErrorResponse

# The error answers every protected route may give (for the OpenAPI document).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 503)
}

_STATUS: tuple[tuple[type[BastionError], int], ...] = (
    (AuthenticationFailed, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (InvalidInput, 400),
    (ServiceError, 503),
    (CryptoError, 400),
    (BudgetExhausted, 429),
)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(obj, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def status_of(exc: BastionError) -> int:
    """The HTTP status of a bastion error (500 for anything not listed: its message is never sent)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


__all__ = ["ERROR_RESPONSES", "error_response", "json_response", "status_of"]
