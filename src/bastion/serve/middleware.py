"""The gateway's pure-ASGI middleware: what every protected request needs, done once, before any route.

Duplicate security headers refused, body size limit (declared and streamed), the per-address limit (before
any token lookup), authentication, the per-identity rate limit, an audit slot (fail closed when the audit
trail cannot take the record), then the route, then the audit record, metrics labelled by route template
and a JSON log line. Any unexpected exception becomes a JSON ``500`` (logged with its type only, counted,
recorded), never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match

from bastion.access import Identity
from bastion.errors import AuthenticationFailed, BastionError, ServiceError
from bastion.serve.connections import client_host
from bastion.serve.gateway import Gateway
from bastion.serve.observability import RequestRecord
from bastion.serve.protocol import ascii_int
from bastion.serve.replies import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/v2", "/openapi.json"})
UNMATCHED_ROUTE = "unmatched"
ROUTE_LABELS = {
    "live": "live",
    "ready": "ready",
    "server_metadata": "server",
    "model_metadata": "metadata",
    "model_ready": "model-ready",
    "infer": "infer",
    "he_infer": "he-infer",
    "metrics": "metrics",
    "openapi": "openapi",
}
# Headers whose value decides authentication or how the body is read: more than one of each is refused.
SINGLE_HEADERS = (
    b"authorization",
    b"content-length",
    b"transfer-encoding",
    b"content-type",
    b"inference-header-content-length",
    b"x-bastion-he-context-length",
)


class _BodyTooLarge(Exception):
    pass


def _client_address(scope: Scope) -> str:
    return client_host(scope.get("client"))


class GatewayMiddleware:
    """Headers → body limit → address limit → authentication → rate limit → audit slot → route → audit
    record, metrics, JSON log; unexpected exceptions end as a JSON 500."""

    def __init__(self, app: ASGIApp, gateway: Gateway, routes: list[Any] | None = None) -> None:
        self.app = app
        self.gw = gateway
        self._routes = list(routes or [])
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _template(self, scope: Scope) -> str:
        """The label of the route a path matches (by template, e.g. ``/v2/models/{name}/infer`` → ``infer``);
        every unknown path shares one label, so random paths cannot grow the metrics."""
        for route in self._routes:
            try:
                match, _ = route.matches(scope)
            except Exception:  # a malformed path must not break the label lookup
                return UNMATCHED_ROUTE
            if match is not Match.NONE:
                name = str(getattr(route, "name", ""))
                return ROUTE_LABELS.get(name, "admin" if name.startswith("admin") else UNMATCHED_ROUTE)
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gw = self.gw
        start = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        path: str = scope["path"]
        status_holder = [500]
        started = [False]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                started[0] = True
            await send(message)

        guard_cfg = gw.config.input_guard
        limit = guard_cfg.max_he_body_bytes if path.endswith("/he/infer") else guard_cfg.max_body_bytes
        try:
            response = await self._admit(scope, state, path, limit)
            if response is not None:
                await response(scope, receive, send_wrapper)
            else:
                await self._forward(scope, receive, send_wrapper, limit, state, started)
        except Exception as exc:  # anything unexpected: a JSON 500, logged by type, counted — no traceback
            state["decision"] = "error:internal"
            state["error"] = type(exc).__name__
            gw.metrics.errors.labels(self._template(scope)).inc()
            if not started[0]:
                with contextlib.suppress(Exception):
                    await error_response(500, "internal error")(scope, receive, send_wrapper)
            status_holder[0] = 500
        self._record(scope, state, status_holder[0], time.perf_counter() - start)

    async def _admit(self, scope: Scope, state: dict[str, Any], path: str, limit: int) -> Response | None:
        """Everything before the route; a response when the request stops here."""
        gw = self.gw
        raw_headers = scope.get("headers") or []
        names = [name for name, _ in raw_headers]
        for name in SINGLE_HEADERS:
            if names.count(name) > 1:
                state["decision"] = "reject:headers"
                return error_response(400, f"more than one {name.decode()} header")
        headers = dict(raw_headers)
        length_header = headers.get(b"content-length")
        if length_header is not None:
            length = ascii_int(length_header)
            if length is None or length > limit:
                state["decision"] = "reject:size"
                return error_response(413, f"request body larger than {limit} bytes")
        if path in PUBLIC_PATHS:
            return None
        try:
            address = _client_address(scope)
            state["address"] = address  # the theft defence also joins a client's sessions by address
            if gw.response_gate is not None and gw.response_gate.refuses(client=address):
                state["decision"] = "deny:blocked"
                return error_response(403, "refused by an incident response")
            if gw.response_gate is not None and gw.response_gate.quarantined(gw.model.name, gw.model.version):
                state["decision"] = "deny:quarantined"
                return error_response(503, "this model is quarantined by an incident response")
            limited = await self._call(gw.limiter.address, address)
            if not limited.allowed:
                state["decision"] = f"deny:rate-{limited.kind}"
                gw.metrics.denials.labels(limited.kind).inc()
                return error_response(
                    429,
                    f"rate limit {limited.limit} exceeded ({limited.kind} of this address)",
                    {"Retry-After": str(limited.retry_after_s), "X-RateLimit-Limit": limited.limit},
                )
            response = await self._authenticate(state, headers, address)
            if response is None and gw.writer is not None and gw.config.audit.on_failure == "refuse":
                response = await self._reserve_audit(state)
            return response
        except ServiceError as exc:
            state["decision"] = "error:service"
            return error_response(503, str(exc))

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.gw.blocking_checks:
            return await run_in_threadpool(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _reserve_audit(self, state: dict[str, Any]) -> Response | None:
        gw = self.gw
        writer = gw.writer
        assert writer is not None
        ok = writer.reserve() or await run_in_threadpool(writer.reserve, gw.config.audit.block_s)
        if ok:
            state["audit_slot"] = True
            return None
        state["decision"] = "deny:audit-unavailable"
        gw.metrics.audit_refused.inc()
        return error_response(503, "the audit trail cannot record this request now; try again later")

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        state: dict[str, Any],
        started: list[bool],
    ) -> None:
        received = [0]

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, receive_wrapper, send)
        except _BodyTooLarge:
            state["decision"] = "reject:size"
            if not started[0]:
                await error_response(413, f"request body larger than {limit} bytes")(scope, receive, send)

    async def _authenticate(
        self, state: dict[str, Any], headers: dict[bytes, bytes], address: str
    ) -> Response | None:
        gw = self.gw
        raw = headers.get(b"authorization")
        try:
            token = gw.auth.bearer(raw.decode("latin-1") if raw is not None else None)
            identity = gw.auth.cached(token)
            if identity is None:
                identity = await run_in_threadpool(gw.auth.verify, token)
        except ServiceError:
            raise
        except BastionError as exc:
            state["decision"] = "deny:auth"
            gw.metrics.denials.labels("auth").inc()
            await self._call(gw.limiter.auth_failure, address)
            message = str(exc) if isinstance(exc, AuthenticationFailed) else "invalid credentials"
            return error_response(401, message, {"WWW-Authenticate": 'Bearer realm="bastion"'})
        state["identity"] = identity
        if gw.response_gate is not None and gw.response_gate.refuses(identity=identity.name):
            state["decision"] = "deny:blocked"
            return error_response(403, "refused by an incident response")
        decision = await self._call(self._identity_limit, identity, address)
        if not decision.allowed:
            state["decision"] = "deny:rate"
            gw.metrics.denials.labels("rate").inc()
            return error_response(
                429,
                f"rate limit {decision.limit} exceeded",
                {"Retry-After": str(decision.retry_after_s), "X-RateLimit-Limit": decision.limit},
            )
        return None

    def _identity_limit(self, identity: Identity, address: str = "-") -> Any:
        gw = self.gw
        throttled = gw.response_gate is not None and gw.response_gate.throttles(address)
        if not throttled and gw.monitor is not None and gw.config.monitor.action == "throttle":
            throttled = gw.monitor.flag(identity.id) is not None
        return gw.limiter.hit(identity=identity.id, role=identity.role, throttled=throttled)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, elapsed: float) -> None:
        gw = self.gw
        identity: Identity | None = state.get("identity")
        route = self._template(scope)
        decision = state.get("decision") or ("allow" if status < 400 else f"status:{status}")
        children = self._children.get((route, status))
        if children is None:  # label lookups take a lock each: keep the children per (route, status)
            children = (gw.metrics.requests.labels(route, str(status)), gw.metrics.latency.labels(route))
            self._children[(route, status)] = children  # bounded: route templates × status codes
        children[0].inc()
        children[1].observe(elapsed)
        if gw.writer is not None:
            gw.writer.record(
                RequestRecord(
                    identity=identity.name if identity else "-",
                    role=identity.role if identity else "-",
                    model=gw.model.name,
                    version=gw.model.version,
                    method=str(scope.get("method", "-"))[:16],
                    path=route,
                    status=status,
                    decision=decision,
                    latency_ms=elapsed * 1000.0,
                    ts=time.time(),
                    client=str(state.get("address", "-")),
                ),
                reserved=bool(state.pop("audit_slot", False)),
            )
        if status >= 500:
            gw.log.error(
                "request failed",
                extra={
                    "event": "request-error",
                    "path": route,
                    "status": status,
                    "decision": decision,
                    "reason": state.get("error"),
                },
            )
        if gw.log.isEnabledFor(logging.INFO):
            gw.log.info(
                "request",
                extra={
                    "event": "request",
                    "identity": identity.name if identity else None,
                    "role": identity.role if identity else None,
                    "model": gw.model.name,
                    "version": gw.model.version,
                    "method": str(scope.get("method", "-"))[:16],
                    "path": route,
                    "status": status,
                    "decision": decision,
                    "latency_ms": round(elapsed * 1000.0, 3),
                },
            )


__all__ = ["PUBLIC_PATHS", "GatewayMiddleware"]
