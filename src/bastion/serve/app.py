"""The gateway's ASGI app: OIP v2 routes behind authentication, rate limits, guards and the monitor.

One pure-ASGI middleware does what every protected request needs — body-size limit, authentication, the
per-identity rate limit, the audit record, metrics and a JSON log line — so that no per-request work is
repeated in the routes. The routes then authorise (deny by default: 401 without valid credentials, 403 for an
identity without the permission), guard the input, run the model, feed the extraction monitor and shape the
answer by the output policy.
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

from bastion import __version__
from bastion.access import Identity, allowed
from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    BastionError,
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
    ) -> None:
        self.model = model
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
                config=config.monitor, n_features=n_features, store=store, center=center
            )
        self.he_model = _he_model(model.adapter)
        if config.api_watermark.enabled and self.text_model is not None:
            raise ConfigError("[serve.api_watermark] marks numeric inputs only; it cannot mark a text model")
        if config.api_watermark.enabled and watermark is None:
            raise ConfigError("[serve.api_watermark] is enabled but no watermark key was given")
        self.watermark = watermark if config.api_watermark.enabled else None
        self.writer = (
            BatchedAuditWriter(audit, target=f"{model.name}:{model.version}", on_error=self._audit_failed)
            if audit is not None
            else None
        )

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

    def _audit_failed(self, exc: Exception) -> None:
        self.log.error("audit write failed", extra={"event": "audit-error", "reason": type(exc).__name__})

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


class GatewayMiddleware:
    """Body limit → authentication → rate limit → route → audit record, metrics, JSON log."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

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
        headers = dict(scope.get("headers") or [])
        response: Response | None = None
        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                state["decision"] = "reject:size"
                response = _error(413, f"request body larger than {limit} bytes")
            elif path not in PUBLIC_PATHS:
                response = await self._authenticate(state, headers)
        except ServiceError as exc:
            response = _error(503, str(exc))
        if response is not None:
            await response(scope, receive, send_wrapper)
        else:
            received = [0]

            async def receive_wrapper() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise _BodyTooLarge
                return message

            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except _BodyTooLarge:
                state["decision"] = "reject:size"
                if not started[0]:
                    await _error(413, f"request body larger than {limit} bytes")(scope, receive, send_wrapper)
        self._record(scope, state, status_holder[0], time.perf_counter() - start)

    async def _authenticate(self, state: dict[str, Any], headers: dict[bytes, bytes]) -> Response | None:
        gw = self.gw
        raw = headers.get(b"authorization")
        try:
            token = gw.auth.bearer(raw.decode("latin-1") if raw is not None else None)
            identity = gw.auth.cached(token)
            if identity is None:
                identity = await run_in_threadpool(gw.auth.verify, token)
        except AuthenticationFailed as exc:
            state["decision"] = "deny:auth"
            gw.metrics.denials.labels("auth").inc()
            return _error(401, str(exc), {"WWW-Authenticate": 'Bearer realm="bastion"'})
        except ServiceError:
            raise
        except BastionError:
            state["decision"] = "deny:auth"
            gw.metrics.denials.labels("auth").inc()
            return _error(401, "invalid credentials", {"WWW-Authenticate": 'Bearer realm="bastion"'})
        state["identity"] = identity
        throttled = False
        if gw.monitor is not None and gw.config.monitor.action == "throttle":
            throttled = gw.monitor.flag(identity.id) is not None
        decision = gw.limiter.hit(identity=identity.id, role=identity.role, throttled=throttled)
        if not decision.allowed:
            state["decision"] = "deny:rate"
            gw.metrics.denials.labels("rate").inc()
            return _error(
                429,
                f"rate limit {decision.limit} exceeded",
                {"Retry-After": str(decision.retry_after_s), "X-RateLimit-Limit": decision.limit},
            )
        return None

    def _record(self, scope: Scope, state: dict[str, Any], status: int, elapsed: float) -> None:
        gw = self.gw
        identity: Identity | None = state.get("identity")
        route = state.get("route") or str(scope.get("path", "-"))[:100]
        decision = state.get("decision") or ("allow" if status < 400 else f"status:{status}")
        children = self._children.get((route, status))
        if children is None:  # label lookups take a lock each: keep the children per (route, status)
            children = (gw.metrics.requests.labels(route, str(status)), gw.metrics.latency.labels(route))
            if len(self._children) < 1000:
                self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(elapsed)
        if gw.writer is not None:
            gw.writer.record(
                RequestRecord(
                    identity=identity.name if identity else "-",
                    role=identity.role if identity else "-",
                    model=gw.model.name,
                    version=gw.model.version,
                    method=scope.get("method", "-"),
                    path=route,
                    status=status,
                    decision=decision,
                    latency_ms=elapsed * 1000.0,
                    ts=time.time(),
                )
            )
            if gw.writer.dropped:
                gw.metrics.audit_dropped.set(gw.writer.dropped)
        if gw.log.isEnabledFor(logging.INFO):
            gw.log.info(
                "request",
                extra={
                    "event": "request",
                    "identity": identity.name if identity else None,
                    "role": identity.role if identity else None,
                    "model": gw.model.name,
                    "version": gw.model.version,
                    "method": scope.get("method"),
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
)


def _status_of(exc: BastionError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def parse_request(raw: bytes, binary_header: str | None) -> InferenceRequest:
    """The JSON request body (any content type, as tritonclient sends); binary tensors are refused."""
    if binary_header is not None and (not binary_header.isdigit() or int(binary_header) != len(raw)):
        raise InvalidInput("the binary tensor extension is not supported: send JSON tensor data")
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
        message = errors[0]["msg"] if errors else "malformed"
        raise InvalidInput(f"invalid request: {where}: {message}"[:300]) from exc


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
        monitor = gw.monitor
        action = gw.config.monitor.action
        if monitor is not None and action == "block" and monitor.flag(identity.id) is not None:
            request.state.decision = "deny:monitor"
            gw.metrics.denials.labels("monitor").inc()
            raise AccessDenied("client blocked by the extraction monitor")
        requested = [o.name for o in body.outputs] if body.outputs else None
        if requested:
            unknown = [n for n in requested if not gw.output.known_output(n)]
            if unknown:
                raise InvalidInput(f"unknown output {unknown[0][:64]!r}")
        text = gw.text_model
        if text is not None:
            try:
                texts, _ = gw.screen_texts(gw.guard.texts(body, max_chars=gw.config.text.max_chars))
            except InvalidInput:
                request.state.decision = "reject:input"
                raise
            proba = text.predict_proba(texts)
            features = text.monitor_features(texts)
        else:
            x = gw.guard.batch(body)
            gw.guard.check_adversarial(x)
            proba = np.asarray(model.adapter.predict_proba(x))
            if gw.watermark is not None:
                proba = gw.watermark.apply(x, proba)
            features = x.reshape(len(x), -1)
        label_only = False
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
                request.state.decision = f"allow:monitor-{action}"
        rule = gw.output.rule(identity.role, label_only=label_only)
        outputs = gw.output.render(
            proba,
            rule=rule,
            requested=requested,
            class_names=text.class_names if text is not None else None,
            redact=gw.redact_output if gw.output.config.redacts(rule) else None,
        )
        return _json(
            {"model_name": model.name, "model_version": model.version, "id": body.id, "outputs": outputs}
        )

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
        if monitor is not None and restricting and monitor.flag(identity.id) is not None:
            request.state.decision = "deny:monitor"
            raise AccessDenied("client restricted by the extraction monitor")
        raw = await request.body()
        length = request.headers.get(HE_HEADER, "")
        if not length.isdigit() or not 0 < int(length) < len(raw):
            raise InvalidInput(f"{HE_HEADER} must give the context length inside the body")
        from bastion.privacy.he import serve_infer

        n = int(length)
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
        clients = gw.monitor.clients() if gw.monitor else []
        return {
            "enabled": gw.monitor is not None,
            "action": gw.config.monitor.action,
            "flagged": [c for c in clients if c["flagged"]],
        }

    @app.get("/admin/clients", tags=["admin"], responses=errors)
    async def admin_clients(request: Request) -> dict[str, Any]:
        request.state.route = "admin"
        require_any(request, ADMIN_READ)
        return {"clients": gw.monitor.clients() if gw.monitor else []}

    @app.post("/admin/clients/{client}/reset", tags=["admin"], responses=errors)
    async def admin_reset(client: str, request: Request) -> dict[str, Any]:
        request.state.route = "admin"
        identity = require_any(request, ("serve:admin",))
        if gw.monitor is not None:
            gw.monitor.reset(client)
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
    app.add_middleware(GatewayMiddleware, gateway=gw)  # type: ignore[arg-type]
    return app


__all__ = ["PUBLIC_PATHS", "Gateway", "GatewayMiddleware", "ServedModel", "create_app"]
