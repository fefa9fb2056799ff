"""The inference router: OIP v2 model metadata, readiness, inference and encrypted (CKKS) inference.

Each route is authorised by its dependency (:mod:`bastion.serve.deps`), then charges the request's rows
against the row limit and runs the guard, the model, PII redaction, the drift and extraction monitors and the
theft defence in the threadpool (a slow model or a Redis round trip never stalls the event loop and the
health routes), then shapes the answer by the output policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bastion.access import Identity
from bastion.errors import (
    AccessDenied,
    BastionError,
    BudgetExhausted,
    CryptoError,
    InvalidInput,
    NotFound,
    RowLimitExceeded,
)
from bastion.serve.deps import CanInfer, CanReadMetadata, GatewayDep
from bastion.serve.gateway import Gateway
from bastion.serve.protocol import InferenceRequest, InferenceResponse, ModelMetadata, ascii_int
from bastion.serve.replies import ERROR_RESPONSES, json_response

HE_HEADER = "x-bastion-he-context-length"
router = APIRouter()


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=ERROR_RESPONSES, tags=["models"])
async def model_metadata(name: str, gw: GatewayDep, _: CanReadMetadata) -> dict[str, Any]:
    model = gw.model
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


@router.get("/v2/models/{name}/ready", responses=ERROR_RESPONSES, tags=["models"])
async def model_ready(name: str, gw: GatewayDep, _: CanReadMetadata) -> dict[str, Any]:
    return {"name": gw.model.name, "ready": True}


@router.post(
    "/v2/models/{name}/infer",
    response_model=InferenceResponse,
    responses=ERROR_RESPONSES,
    tags=["models"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
        }
    },
)
async def infer(name: str, request: Request, gw: GatewayDep, identity: CanInfer) -> Response:
    model = gw.model
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
    return json_response(answer)


@router.post(
    "/v2/models/{name}/he/infer",
    responses=ERROR_RESPONSES,
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
async def he_infer(name: str, request: Request, gw: GatewayDep, identity: CanInfer) -> Response:
    """CKKS inference: body = public context (length in the header) followed by the ciphertext payload."""
    if gw.he_model is None:
        raise NotFound(f"model {name!r} has no homomorphic-encryption form")
    if gw.output.rule(identity.role).mode != "probabilities":
        request.state.decision = "deny:output-policy"
        raise AccessDenied(f"encrypted inference returns full logits; the {identity.role} policy forbids it")
    monitor = gw.monitor
    restricting = gw.config.monitor.action in ("block", "label-only")
    if monitor is not None and restricting and await run_in_threadpool(monitor.flag, identity.id) is not None:
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


__all__ = ["HE_HEADER", "parse_request", "router"]
