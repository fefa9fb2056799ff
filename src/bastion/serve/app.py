"""The gateway's ASGI app: OIP v2 routes behind authentication, rate limits, guards and the monitor.

One pure-ASGI middleware does what every protected request needs — duplicate security headers refused, body
size limit, the per-address limit (before any token lookup), authentication, the per-identity rate limit, an
audit slot (fail closed when the audit trail cannot take the record), the audit record, metrics labelled by
route template and a JSON log line — so that no per-request work is repeated in the routes. Any unexpected
exception becomes a JSON ``500`` (logged with its type only, counted, recorded), never a traceback. The routes
then authorise (deny by default: 401 without valid credentials, 403 for an identity without the permission),
charge the request's rows against the row limit, and run the guard, the model, PII redaction and the
extraction monitor in the threadpool (a slow model or a Redis round trip never stalls the event loop and
the health routes), then shape the answer by the output policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match

from bastion import __version__
from bastion.access import Identity, allowed
from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    BastionError,
    BudgetExhausted,
    ConfigError,
    CryptoError,
    InvalidInput,
    NotFound,
    ServiceError,
)
from bastion.serve.auth import Authenticator
from bastion.serve.config import GatewayConfig
from bastion.serve.guards import InputGuard
from bastion.serve.monitor import ExtractionMonitor, MonitorStore, RedisMonitorStore
from bastion.serve.observability import AuditSink, BatchedAuditWriter, Metrics, RequestRecord, gateway_logger
from bastion.serve.output import OutputPolicy
from bastion.serve.protocol import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
    ascii_int,
)
from bastion.serve.ratelimit import RateLimiter
from bastion.serve.text import MONITOR_FEATURES, PiiRedactor, TextModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/v2", "/openapi.json"})
ADMIN_READ = ("serve:admin", "log:read")  # admin and auditor
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


@dataclass(frozen=True)
class ServedModel:
    """A verified, loaded model version."""

    name: str
    version: str
    adapter: Any  # bastion.models.ModelAdapter
    digest: str
    env: str | None = None
    platform: str = "bastion"
    input_name: str = "input"
    extras: dict[str, Any] = field(default_factory=dict)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(obj, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


class _BodyTooLarge(Exception):
    pass


class Gateway:
    """All the gateway's parts for one served model. ``close()`` flushes the audit writer."""

    def __init__(
        self,
        *,
        model: ServedModel,
        config: GatewayConfig,
        authenticator: Authenticator,
        audit: AuditSink | None,
        monitor_store: MonitorStore | None = None,
        namespace: str = "",
        logger: logging.Logger | None = None,
        watermark: Any = None,
        theft: Any = None,
        monitor_key: bytes | None = None,
        drift: Any = None,
    ) -> None:
        self.model = model
        self.drift = drift  # bastion.serve.drift.DriftMonitor: live input/output drift against training
        self.theft = theft  # bastion.serve.theft.TheftDefence: keyed detection and responses per consumer
        self.config = config
        self.auth = authenticator
        self.log = logger or gateway_logger()
        self.metrics = Metrics()
        self.limiter = RateLimiter(config=config.rate_limit, redis_url=config.redis_url, namespace=namespace)
        shape = tuple(int(d) for d in model.adapter.input_shape)
        self.guard = InputGuard(
            config=config.input_guard, input_shape=shape, input_name=model.input_name, model=model.adapter
        )
        self.output = OutputPolicy(config.output_policy)
        self.text_model: TextModel | None = model.adapter if isinstance(model.adapter, TextModel) else None
        self.redactor = PiiRedactor() if self.text_model is not None else None
        self.monitor: ExtractionMonitor | None = None
        if config.monitor.enabled:
            n_features = MONITOR_FEATURES if self.text_model is not None else int(np.prod(shape))
            store = monitor_store
            if store is None and config.redis_url:
                store = RedisMonitorStore(
                    config=config.monitor,
                    n_features=n_features,
                    url=config.redis_url,
                    prefix=f"{config.monitor.key_prefix}{namespace}:{model.name}",
                )
            lo, hi = config.input_guard.min_value, config.input_guard.max_value
            center = (lo + hi) / 2.0 if lo is not None and hi is not None else 0.0
            if self.text_model is not None:  # hashed, L2-normalised bags of words
                center = 1.0 / np.sqrt(MONITOR_FEATURES)
            self.monitor = ExtractionMonitor(
                config=config.monitor,
                n_features=n_features,
                store=store,
                center=center,
                key=monitor_key or (store.shared_secret() if isinstance(store, RedisMonitorStore) else None),
            )
        self.he_model = _he_model(model.adapter)
        if config.api_watermark.enabled and self.text_model is not None:
            raise ConfigError("[serve.api_watermark] marks numeric inputs only; it cannot mark a text model")
        if config.api_watermark.enabled and watermark is None:
            raise ConfigError("[serve.api_watermark] is enabled but no watermark key was given")
        self.watermark = watermark if config.api_watermark.enabled else None
        audit_cfg = config.audit
        self.writer = (
            BatchedAuditWriter(
                audit,
                target=f"{model.name}:{model.version}",
                max_queue=audit_cfg.max_queue,
                on_failure=audit_cfg.on_failure,
                stall_s=audit_cfg.block_s,
                failure_sample=audit_cfg.failure_sample,
                on_error=self._audit_failed,
            )
            if audit is not None
            else None
        )
        writer = self.writer
        if writer is not None:
            self.metrics.audit_dropped.set_function(lambda: float(writer.dropped))
        if drift is not None:
            drift.register_metrics(self.metrics.registry, model=model.name)
        # Redis-backed limits or monitor: their synchronous calls leave the event loop (threadpool).
        self.blocking_checks = bool(config.redis_url) or self.limiter.shared

    def screen_texts(self, texts: list[str]) -> tuple[list[str], tuple[str, ...]]:
        """Apply ``[serve.text] input_pii`` before the model (or anything else) sees the texts."""
        action = self.config.text.input_pii
        if action == "allow" or self.redactor is None:
            return texts, ()
        out: list[str] = []
        found: set[str] = set()
        for text in texts:
            clean, entities = self.redactor.redact(text)
            if entities and action == "reject":
                raise InvalidInput(f"input text contains PII ({', '.join(sorted(set(entities)))}): rejected")
            found.update(entities)
            out.append(clean)
        return out, tuple(sorted(found))

    def redact_output(self, value: str) -> str:
        if self.redactor is None:
            from bastion.serve.text import PiiRedactor as _Redactor

            self.redactor = _Redactor()
        return self.redactor.redact(value)[0]

    def drift_changed(self, change: Any) -> None:
        """A drift alert raised or cleared (``DriftTransition``): one warning and one audit entry."""
        details = {"model": self.model.name, "version": self.model.version, **change.details()}
        reason = "; ".join(change.report.alerts) or f"cleared: {', '.join(change.cleared)}"
        self.log.warning(
            "drift alert changed",
            extra={
                "event": "drift-alert",
                "model": self.model.name,
                "version": self.model.version,
                "reason": reason,
            },
        )
        if self.writer is not None:
            self.writer.event(action="serve:drift-alert", outcome="ok", details=details)

    def _audit_failed(self, exc: Exception) -> None:
        self.log.error(
            "audit write failed", extra={"event": "audit-error", "reason": f"{type(exc).__name__}"[:80]}
        )

    def close(self) -> None:
        marks_file = self.config.api_watermark.marks_file
        if self.watermark is not None and marks_file and len(self.watermark):
            self.watermark.marks().save(marks_file)
        self.limiter.close()
        if self.writer is not None:
            self.writer.close()


def _he_model(adapter: Any) -> Any:
    """The model's CKKS form when it has one (Linear layers, square activations), else None."""
    module = getattr(adapter, "module", None)
    if module is None:
        return None
    try:
        from bastion.privacy.he import model_from_torch
    except ImportError:
        return None
    try:
        return model_from_torch(module)
    except (BastionError, ImportError):
        return None


def _marks_document(watermark: Any) -> dict[str, Any]:
    """``ApiMarks`` in its file format (written and read back: the format stays the watermark package's)."""
    import tempfile
    from pathlib import Path

    marks = watermark.marks()  # NotFound when nothing was marked yet
    with tempfile.TemporaryDirectory(prefix="bastion-marks-") as tmp:
        path = Path(tmp) / "marks.json"
        marks.save(path)
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


HE_HEADER = "x-bastion-he-context-length"


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0])[:64] if client else "-"


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
                    await _error(500, "internal error")(scope, receive, send_wrapper)
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
                return _error(400, f"more than one {name.decode()} header")
        headers = dict(raw_headers)
        length_header = headers.get(b"content-length")
        if length_header is not None:
            length = ascii_int(length_header)
            if length is None or length > limit:
                state["decision"] = "reject:size"
                return _error(413, f"request body larger than {limit} bytes")
        if path in PUBLIC_PATHS:
            return None
        try:
            address = _client_address(scope)
            state["address"] = address  # the theft defence also joins a client's sessions by address
            limited = await self._call(gw.limiter.address, address)
            if not limited.allowed:
                state["decision"] = f"deny:rate-{limited.kind}"
                gw.metrics.denials.labels(limited.kind).inc()
                return _error(
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
            return _error(503, str(exc))

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
        return _error(503, "the audit trail cannot record this request now; try again later")

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
                await _error(413, f"request body larger than {limit} bytes")(scope, receive, send)

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
            return _error(401, message, {"WWW-Authenticate": 'Bearer realm="bastion"'})
        state["identity"] = identity
        decision = await self._call(self._identity_limit, identity)
        if not decision.allowed:
            state["decision"] = "deny:rate"
            gw.metrics.denials.labels("rate").inc()
            return _error(
                429,
                f"rate limit {decision.limit} exceeded",
                {"Retry-After": str(decision.retry_after_s), "X-RateLimit-Limit": decision.limit},
            )
        return None

    def _identity_limit(self, identity: Identity) -> Any:
        gw = self.gw
        throttled = False
        if gw.monitor is not None and gw.config.monitor.action == "throttle":
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


_STATUS: tuple[tuple[type[BastionError], int], ...] = (
    (AuthenticationFailed, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (InvalidInput, 400),
    (ServiceError, 503),
    (CryptoError, 400),
    (BudgetExhausted, 429),
)


def _status_of(exc: BastionError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def parse_request(raw: bytes, binary_header: str | None) -> InferenceRequest:
    """The JSON request body (any content type, as tritonclient sends); binary tensors are refused."""
    if binary_header is not None and ascii_int(binary_header) != len(raw):
        raise InvalidInput("the binary tensor extension is not supported: send JSON tensor data")
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
        message = errors[0]["msg"] if errors else "malformed"
        raise InvalidInput(f"invalid request: {where}: {message}"[:300]) from exc


def _rows(body: InferenceRequest) -> int:
    """The number of model queries a request asks for (its batch size; at least 1)."""
    shape = body.inputs[0].shape if body.inputs else []
    return max(1, int(shape[0])) if shape else 1


def _answer(
    gw: Gateway, state: Any, identity: Identity, body: InferenceRequest, requested: list[str] | None
) -> list[dict[str, Any]]:
    """One inference request after authorisation (runs in the threadpool)."""
    model = gw.model
    monitor = gw.monitor
    action = gw.config.monitor.action
    restricts = monitor is not None and action in ("block", "throttle")
    flagged = monitor.flag(identity.id) if monitor is not None and restricts else None
    if monitor is not None and action == "block" and flagged is not None:
        state.decision = "deny:monitor"
        gw.metrics.denials.labels("monitor").inc()
        raise AccessDenied("client blocked by the extraction monitor")
    text = gw.text_model
    if text is not None:
        try:
            raw_texts = gw.guard.texts(body, max_chars=gw.config.text.max_chars)
        except InvalidInput:
            state.decision = "reject:input"
            raise
        _charge_rows(gw, state, identity, len(raw_texts), throttled=flagged is not None)
        try:
            texts, _ = gw.screen_texts(raw_texts)
        except InvalidInput:
            state.decision = "reject:input"
            raise
        proba = text.predict_proba(texts)
        features = text.monitor_features(texts)
    else:
        x = gw.guard.batch(body)
        _charge_rows(gw, state, identity, len(x), throttled=flagged is not None)
        gw.guard.check_adversarial(x)
        proba = np.asarray(model.adapter.predict_proba(x))
        if gw.drift is not None:  # the model's own outputs, before any API watermark
            change = gw.drift.observe(x.reshape(len(x), -1), proba)
            if change is not None:
                gw.drift_changed(change)
        if gw.watermark is not None:
            proba = gw.watermark.apply(x, proba)
        features = x.reshape(len(x), -1)
    label_only = False
    if gw.theft is not None and text is None:  # the theft defence replaces the PRADA monitor's response
        monitor = None
        try:
            address = getattr(state, "address", None)
            joined = (identity.id, f"addr:{address}") if address and address != "-" else (identity.id,)
            answer = gw.theft.respond(consumers=joined, x=features, proba=proba)
        except (BudgetExhausted, AccessDenied):
            state.decision = "deny:theft"
            gw.metrics.denials.labels("monitor").inc()
            raise
        proba = answer.proba
        if answer.newly_flagged:
            gw.metrics.flags.inc()
            gw.log.warning(
                "theft defence flagged a client",
                extra={"event": "theft-flag", "identity": identity.name, "reason": answer.reason},
            )
            if gw.writer is not None:
                gw.writer.event(
                    action="serve:theft-flag",
                    outcome="ok",
                    details={"identity": identity.name, "reason": answer.reason, "score": answer.score},
                )
        if answer.flagged:
            state.decision = "allow:theft-defence"
    if monitor is not None:
        verdict = monitor.observe(identity.id, features)
        if verdict.newly_flagged:
            gw.metrics.flags.inc()
            gw.log.warning(
                "extraction monitor flagged a client",
                extra={"event": "monitor-flag", "identity": identity.name, "reason": verdict.reason},
            )
            if gw.writer is not None:
                gw.writer.event(
                    action="serve:monitor-flag",
                    outcome="denied" if action in ("block", "label-only", "throttle") else "ok",
                    details={"identity": identity.name, "reason": verdict.reason, "action": action},
                )
        label_only = verdict.flagged and action in ("label-only", "block")
        if verdict.flagged:
            state.decision = f"allow:monitor-{action}"
    rule = gw.output.rule(identity.role, label_only=label_only)
    outputs: list[dict[str, Any]] = gw.output.render(
        proba,
        rule=rule,
        requested=requested,
        class_names=text.class_names if text is not None else None,
        redact=gw.redact_output if gw.output.config.redacts(rule) else None,
    )
    return outputs


class RowLimitExceeded(BastionError):
    """A request's rows do not fit the identity's row (model-query) limit: 429."""

    def __init__(self, message: str, *, retry_after_s: int, limit: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit = limit


def _charge_rows(gw: Gateway, state: Any, identity: Identity, rows: int, *, throttled: bool) -> None:
    throttled = throttled and gw.config.monitor.action == "throttle"
    decision = gw.limiter.rows(identity=identity.id, role=identity.role, rows=rows, throttled=throttled)
    if not decision.allowed:
        state.decision = "deny:rate-rows"
        gw.metrics.denials.labels("rows").inc()
        raise RowLimitExceeded(
            f"row limit {decision.limit} exceeded ({rows} rows asked, {decision.remaining} left)",
            retry_after_s=decision.retry_after_s,
            limit=decision.limit,
        )


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
    gw = gateway
    model = gw.model
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 503)
    }

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            gw.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bastion gateway",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @app.exception_handler(RowLimitExceeded)
    async def _row_limit(request: Request, exc: RowLimitExceeded) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s), "X-RateLimit-Limit": exc.limit}
        return _error(429, str(exc), headers)

    @app.exception_handler(BastionError)
    async def _bastion_error(request: Request, exc: BastionError) -> Response:
        status = _status_of(exc)
        request.state.decision = getattr(request.state, "decision", None) or f"error:{type(exc).__name__}"
        return _error(status, str(exc) if status < 500 else "internal error")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        request.state.decision = "reject:input"
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where}: {first.get('msg', 'malformed')}"[:300])

    def identity_of(request: Request) -> Identity:
        identity = getattr(request.state, "identity", None)
        if identity is None:  # the middleware authenticates every non-public path
            raise AuthenticationFailed("missing credentials")
        return identity

    def require(request: Request, permission: str, *, model_name: str | None = None) -> Identity:
        identity = identity_of(request)
        if allowed(identity, permission, model=model_name, env=model.env):
            return identity
        request.state.decision = "deny:role"
        gw.metrics.denials.labels("role").inc()
        raise AccessDenied(
            f"{identity.role} may not {permission}" + (f" on {model_name}" if model_name else "")
        )

    def require_any(request: Request, permissions: tuple[str, ...]) -> Identity:
        identity = identity_of(request)
        if any(allowed(identity, p) for p in permissions):
            return identity
        request.state.decision = "deny:role"
        gw.metrics.denials.labels("role").inc()
        raise AccessDenied(f"{identity.role} may not use the admin endpoints")

    def served(request: Request, name: str, permission: str) -> Identity:
        identity = require(request, permission, model_name=name)
        if name != model.name:
            raise NotFound(f"model {name!r} is not served here")
        return identity

    @app.get("/v2/health/live", tags=["health"])
    async def live(request: Request) -> dict[str, bool]:
        request.state.route = "live"
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    async def ready(request: Request) -> dict[str, bool]:
        request.state.route = "ready"
        return {"ready": True}

    @app.get("/v2", response_model=ServerMetadata, tags=["health"])
    async def server_metadata(request: Request) -> dict[str, Any]:
        request.state.route = "server"
        return {"name": "bastion", "version": __version__, "extensions": []}

    @app.get("/v2/models/{name}", response_model=ModelMetadata, responses=errors, tags=["models"])
    async def model_metadata(name: str, request: Request) -> dict[str, Any]:
        request.state.route = "metadata"
        served(request, name, "model:metadata")
        shape = [int(d) for d in model.adapter.input_shape]
        text = gw.text_model is not None
        names = [{"name": "label_name", "datatype": "BYTES", "shape": [-1]}] if text else []
        return {
            "name": model.name,
            "versions": [model.version],
            "platform": model.platform,
            "inputs": [
                {"name": model.input_name, "datatype": "BYTES", "shape": [-1]}
                if text
                else {"name": model.input_name, "datatype": "FP32", "shape": [-1, *shape]}
            ],
            "outputs": [
                *names,
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, int(model.adapter.n_classes)]},
                {"name": "top_k_labels", "datatype": "INT64", "shape": [-1, -1]},
                {"name": "top_k_probabilities", "datatype": "FP32", "shape": [-1, -1]},
            ],
        }

    @app.get("/v2/models/{name}/ready", responses=errors, tags=["models"])
    async def model_ready(name: str, request: Request) -> dict[str, Any]:
        request.state.route = "model-ready"
        served(request, name, "model:metadata")
        return {"name": model.name, "ready": True}

    @app.post(
        "/v2/models/{name}/infer",
        response_model=InferenceResponse,
        responses=errors,
        tags=["models"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}
                },
            }
        },
    )
    async def infer(name: str, request: Request) -> Response:
        request.state.route = "infer"
        identity = served(request, name, "model:infer")
        body = parse_request(await request.body(), request.headers.get("inference-header-content-length"))
        requested = [o.name for o in body.outputs] if body.outputs else None
        if requested:
            unknown = [n for n in requested if not gw.output.known_output(n)]
            if unknown:
                raise InvalidInput(f"unknown output {unknown[0][:64]!r}")
        # Guard, row limit, model, redaction and monitor: off the event loop (slow models, Redis, PII).
        outputs = await run_in_threadpool(_answer, gw, request.state, identity, body, requested)
        answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
        if body.id is not None:  # OIP v2: the id is echoed when the request had one, never sent as null
            answer["id"] = body.id
        answer["outputs"] = outputs
        return _json(answer)

    @app.post(
        "/v2/models/{name}/he/infer",
        responses=errors,
        tags=["models"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "parameters": [
                {
                    "name": HE_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                }
            ],
        },
    )
    async def he_infer(name: str, request: Request) -> Response:
        """CKKS inference: body = public context (length in the header) followed by the ciphertext payload."""
        request.state.route = "he-infer"
        identity = served(request, name, "model:infer")
        if gw.he_model is None:
            raise NotFound(f"model {name!r} has no homomorphic-encryption form")
        if gw.output.rule(identity.role).mode != "probabilities":
            request.state.decision = "deny:output-policy"
            raise AccessDenied(
                f"encrypted inference returns full logits; the {identity.role} policy forbids it"
            )
        monitor = gw.monitor
        restricting = gw.config.monitor.action in ("block", "label-only")
        if (
            monitor is not None
            and restricting
            and await run_in_threadpool(monitor.flag, identity.id) is not None
        ):
            request.state.decision = "deny:monitor"
            raise AccessDenied("client restricted by the extraction monitor")
        raw = await request.body()
        n = ascii_int(request.headers.get(HE_HEADER))
        if n is None or not 0 < n < len(raw):
            raise InvalidInput(f"{HE_HEADER} must give the context length inside the body")
        from bastion.privacy.he import serve_infer

        try:
            result = await run_in_threadpool(serve_infer, raw[:n], raw[n:], gw.he_model)
        except BastionError:
            raise
        except Exception as exc:  # TenSEAL's own errors on hostile bytes: one opaque answer
            raise CryptoError("the encrypted request did not load") from exc
        return Response(result, media_type="application/octet-stream")

    @app.get("/metrics", tags=["admin"], responses=errors)
    async def metrics(request: Request) -> Response:
        request.state.route = "metrics"
        require_any(request, ADMIN_READ)
        payload, content_type = gw.metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/admin/monitor", tags=["admin"], responses=errors)
    async def admin_monitor(request: Request) -> dict[str, Any]:
        request.state.route = "admin"
        require_any(request, ADMIN_READ)
        clients = await run_in_threadpool(gw.monitor.clients) if gw.monitor else []
        return {
            "enabled": gw.monitor is not None,
            "action": gw.config.monitor.action,
            "flagged": [c for c in clients if c["flagged"]],
        }

    @app.get("/admin/theft", tags=["admin"], responses=errors)
    async def admin_theft(request: Request) -> dict[str, Any]:
        """Consumers flagged by the theft defence, with the evidence behind each flag."""
        request.state.route = "admin"
        require_any(request, ADMIN_READ)
        return {"enabled": gw.theft is not None, "flags": gw.theft.flags() if gw.theft else []}

    @app.get("/admin/theft/evidence", tags=["admin"], responses=errors)
    async def admin_theft_evidence(request: Request) -> Response:
        """Each identity's recorded queries and the clean model's answers on them (MAC'd) for
        ``bastion watermark verify --consumers``. Holds consumers' inputs: admins only, audit-logged."""
        request.state.route = "admin"
        identity = require_any(request, ("serve:admin",))
        if gw.theft is None:
            raise NotFound("the theft defence is not enabled on this gateway")
        evidence = await run_in_threadpool(gw.theft.evidence, gw.model.adapter.predict_proba)
        if gw.writer is not None:
            gw.writer.event(
                action="serve:theft-evidence",
                outcome="ok",
                details={"by": identity.name, "consumers": sorted(evidence.consumers)},
            )
        return _json(evidence.to_doc())

    @app.get("/admin/clients", tags=["admin"], responses=errors)
    async def admin_clients(request: Request) -> dict[str, Any]:
        request.state.route = "admin"
        require_any(request, ADMIN_READ)
        return {"clients": await run_in_threadpool(gw.monitor.clients) if gw.monitor else []}

    @app.post("/admin/clients/{client}/reset", tags=["admin"], responses=errors)
    async def admin_reset(client: str, request: Request) -> dict[str, Any]:
        request.state.route = "admin"
        identity = require_any(request, ("serve:admin",))
        if gw.monitor is not None:
            await run_in_threadpool(gw.monitor.reset, client)
        if gw.writer is not None:
            gw.writer.event(
                action="serve:monitor-reset", outcome="ok", details={"client": client, "by": identity.name}
            )
        return {"client": client, "reset": True}

    @app.get("/admin/watermark/marks", tags=["admin"], responses=errors)
    async def admin_watermark_marks(request: Request) -> Response:
        """The API watermark's marked queries (MAC'd ``ApiMarks`` JSON) for ``watermark verify --marks``."""
        request.state.route = "admin"
        identity = require_any(request, ADMIN_READ)
        if gw.watermark is None:
            raise NotFound("the API watermark is not enabled on this gateway")
        doc = await run_in_threadpool(_marks_document, gw.watermark)
        if gw.writer is not None:
            gw.writer.event(
                action="serve:watermark-export",
                outcome="ok",
                details={"by": identity.name, "marks": len(doc["labels"]), "key_id": doc["key_id"]},
            )
        return _json(doc)

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(GatewayMiddleware, gateway=gw, routes=app.routes)  # type: ignore[arg-type]
    return app


__all__ = ["PUBLIC_PATHS", "Gateway", "GatewayMiddleware", "ServedModel", "create_app"]
