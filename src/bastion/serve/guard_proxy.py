"""The guarded proxy: an OpenAI-compatible endpoint in front of any OpenAI-compatible upstream.

``/v1/chat/completions`` and ``/v1/completions`` (streaming SSE included) pass through when the caller is
authenticated (bastion API tokens or JWTs, via the gateway's :class:`~bastion.serve.auth.Authenticator`),
holds ``model:infer`` on the requested model, is within its rate limits (requests per minute by role, via
the gateway's :class:`~bastion.serve.ratelimit.RateLimiter`, and tokens per minute: prompt characters / 4
plus ``max_tokens``, charged before the upstream is called) and its prompts pass the detector. Answers go
through the output policy; streamed answers through :class:`~bastion.guard.stream.StreamGuard`, which cuts
the stream before a violating span is sent.

Modes: ``block`` (refuse flagged prompts, block or redact outputs by the policy), ``redact`` (like block for
prompts; outputs are redacted where the policy allows), ``shadow`` (log and audit only; nothing is changed).
Every block (and every shadow finding) is one audit-log entry (never the text, only reasons and IDs).
Fail closed: a detector error answers 503 unless ``unsafe_fail_open`` is set (which logs a warning).

Seen by hunting and response like the gateway (issue 17 attack17c F3): before any token lookup, a client
address the response state blocks is refused and the gateway's per-address limits apply (requests, and
failed logins: an address past ``auth_failures`` is refused without a lookup); every request, admitted or
not, becomes one request record in the audit log through the gateway's
:class:`~bastion.serve.observability.BatchedAuditWriter` (identity, model asked for, status, decision,
client address), refused tokens counted per client address instead of one entry each, so a token spray
names its address and an extraction burst through the proxy is counted. An authenticated request whose
record the audit trail cannot take is refused (503), as at the gateway. :func:`guard_proxy_for_vault` wires
what ``bastion guard serve`` runs.

This module composes the gateway's parts (authenticator, rate limiter, batched audit writer) with the guard
capability (``bastion.guard``): a layer-6 face, so it lives in ``bastion.serve`` (layer 6 may import the
layer-5 guard; the guard may not import the gateway).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, StreamingResponse

from bastion.errors import AccessDenied, AuthenticationFailed, BastionError, InvalidInput
from bastion.guard.detector import PromptDetector
from bastion.guard.policy import OutputContext, OutputPolicy, SessionScore
from bastion.guard.stream import StreamGuard
from bastion.guard.wire import chunk_text, finish_reason, prompt_texts, sse, with_text
from bastion.serve._guard_config import MODES, ProxyConfig, TokenBudget
from bastion.serve.config import RateLimitConfig
from bastion.serve.connections import client_host
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.serve.ratelimit import RateLimiter

log = logging.getLogger("bastion.guard")


# the request record's decision for each refusal (what the event collector maps to a kind)
_DECISIONS = {
    "refused": "deny:blocked",
    "rate_limited": "deny:rate",
    "token_rate_limited": "deny:rate-tokens",
    "too_large": "reject:size",
    "invalid_json": "reject:json",
    "invalid_request": "reject:request",
    "prompt_blocked": "deny:prompt",
    "guard_unavailable": "error:guard",
    "upstream_error": "error:upstream",
    "audit_unavailable": "deny:audit-unavailable",
}
_PATHS = {"chat": "/v1/chat/completions", "text": "/v1/completions"}


class _Blocked(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        decision: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.decision = decision or _DECISIONS.get(code, f"deny:{code}")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import JSONResponse

    body = {"error": {"message": message, "type": "bastion_guard", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def new_canary() -> str:
    """A fresh canary token to plant in a system prompt (leaking it is caught by the output policy)."""
    return f"bastion-canary-{secrets.token_hex(8)}"


class GuardProxy:
    def __init__(
        self,
        *,
        config: ProxyConfig,
        authenticator: Any,
        audit: Any = None,
        detector: PromptDetector | None = None,
        rate_limit: Any = None,
        response_gate: Any = None,
    ) -> None:
        self.config = config
        # bastion.respond.gate.ResponseGate: `bastion respond` may raise the guard to block mode
        self.response_gate = response_gate
        self.auth = authenticator
        self.detector = detector or PromptDetector()
        self.policy = OutputPolicy(config.output)
        self.sessions = SessionScore()
        rl = rate_limit
        if rl is None:
            rl = (
                RateLimitConfig(per_role=dict(config.requests_per_minute))
                if config.requests_per_minute
                else RateLimitConfig()
            )
        self.requests = RateLimiter(config=rl, namespace="guard")
        self.tokens = TokenBudget()
        self.audit = (
            BatchedAuditWriter(audit, target=config.upstream, flush_s=0.2) if audit is not None else None
        )
        self.context = OutputContext(canaries=config.canaries, system_prompt=config.system_prompt)
        if config.unsafe_fail_open:
            log.warning("guard proxy: unsafe_fail_open is set - prompts pass when the detector fails")
        self._client: Any = None

    @property
    def mode(self) -> str:
        """The configured mode, raised to ``block`` while an incident response asks for it."""
        gate = self.response_gate
        if gate is not None:
            state = gate.state()
            if state is None or state.guard_mode == "block":  # an invalid response state fails closed
                return "block"
        return self.config.mode

    # -- checks -----------------------------------------------------------------------------------------
    def _event(self, identity: Any, action: str, outcome: str, details: dict[str, Any]) -> None:
        if self.audit is not None:
            # the identity's name (what the response state and the gateway name), not its id; the log takes
            # ok/denied/error only: a shadow finding is an "ok" entry (its action says flagged) - before, its
            # "shadow" outcome was refused and the writer retried it forever, holding every later record
            if outcome == "shadow":
                outcome, details = "ok", {**details, "shadow": True}
            self.audit.event(action=action, outcome=outcome, details={"identity": identity.name, **details})

    def _limits(self, identity: Any, tokens: int) -> None:
        decision = self.requests.hit(identity=identity.id, role=identity.role)
        if not decision.allowed:
            raise _Blocked(
                429,
                "rate_limited",
                "request rate limit exceeded",
                {"Retry-After": str(decision.retry_after_s)},
            )
        per_min = self.config.tokens_per_minute.get(identity.role, self.config.default_tokens_per_minute)
        if not self.tokens.take(identity.id, tokens, per_minute=per_min):
            raise _Blocked(429, "token_rate_limited", "token rate limit exceeded", {"Retry-After": "60"})

    def _scan_prompts(
        self, identity: Any, texts: list[tuple[str, str]], session: str | None, model: str = "-"
    ) -> None:
        worst = None
        try:
            verdicts = [self.detector.scan(t, channel=ch) for ch, t in texts if t]
        except InvalidInput:
            raise
        except Exception as exc:
            if self.config.unsafe_fail_open:
                log.warning(
                    "guard detector failed (%s); passing the request (unsafe_fail_open)", type(exc).__name__
                )
                return
            raise _Blocked(503, "guard_unavailable", "the guard could not inspect the request") from exc
        for v in verdicts:
            if worst is None or v.score - v.threshold > worst.score - worst.threshold:
                worst = v
        if worst is None:
            return
        flagged = worst.flagged
        reasons = list(worst.reasons)
        if session:
            total, over = self.sessions.add(f"{identity.id}:{session}", worst.score)
            if over and not flagged:
                flagged, reasons = True, [f"session-score:{total:.2f}"]
        if not flagged:
            return
        details = {
            "model": model,  # the model the caller asked for (the entry's target is the upstream)
            "channel": worst.channel,
            "score": round(worst.score, 4),
            "reasons": reasons[:12],
            "atlas": list(worst.atlas),
            "owasp": list(worst.owasp),
            "mode": self.mode,
        }
        if self.mode == "shadow":
            self._event(identity, "guard:prompt-flagged", "shadow", details)
            return
        self._event(identity, "guard:prompt-blocked", "denied", details)
        raise _Blocked(
            400,
            "prompt_blocked",
            "the request was blocked by the bastion guard: " + ", ".join(worst.categories),
        )

    # -- app ----------------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Pay the one-off costs before the first client does: the output policy's detectors load their
        word lists on first use (~0.8 s here) and the upstream HTTP client is imported lazily (~0.5 s)."""
        import aiohttp  # noqa: F401

        try:
            self.policy.check("warm-up", context=self.context)
        except Exception as exc:  # best effort: a broken policy still fails closed on each request
            log.warning("guard proxy: output policy warm-up failed (%s)", type(exc).__name__)

    def app(self) -> Any:
        self.warm_up()
        app = FastAPI(title="bastion guard", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/health")
        async def health() -> Any:
            return {"status": "ok"}

        async def handle(request: Request, kind: str) -> Any:
            started = time.perf_counter()
            client = client_host(request.client)
            seen: dict[str, Any] = {"identity": None, "model": "-", "decision": None, "reserved": False}
            try:
                response = await self._handle(request, kind, client, seen)
            except AuthenticationFailed:
                seen["decision"] = "deny:auth"
                response = _error(
                    401, "unauthenticated", "missing or invalid credentials", {"WWW-Authenticate": "Bearer"}
                )
            except AccessDenied:
                seen["decision"] = "deny:forbidden"
                response = _error(403, "forbidden", "not allowed to use this model")
            except InvalidInput as exc:
                seen["decision"] = "reject:request"
                response = _error(400, "invalid_request", str(exc))
            except _Blocked as exc:
                seen["decision"] = exc.decision
                response = _error(exc.status, exc.code, exc.message, exc.headers)
            self._record(seen, client, kind, int(response.status_code), started)
            return response

        async def chat(request: Request) -> Any:
            return await handle(request, "chat")

        async def completions(request: Request) -> Any:
            return await handle(request, "text")

        # plain Starlette routes: every answer is already a Response, so FastAPI's per-request dependency and
        # response-model machinery (~0.03 ms a request here) has nothing to do
        app.add_route("/v1/chat/completions", chat, methods=["POST"])
        app.add_route("/v1/completions", completions, methods=["POST"])

        @app.on_event("shutdown")
        async def _close() -> None:
            await self.aclose()

        return app

    async def _handle(self, request: Request, kind: str, client: str, seen: dict[str, Any]) -> Any:
        """One request: the client checks before any token lookup, then authentication, the audit slot,
        the body, the permission, the limits, the prompt scan and the upstream call."""
        gate = self.response_gate
        if gate is not None and gate.refuses(client=client):
            raise _Blocked(403, "refused", "refused by an incident response")
        limited = self.requests.address(client)
        if not limited.allowed:
            raise _Blocked(
                429,
                "rate_limited",
                f"rate limit {limited.limit} exceeded ({limited.kind} of this address)",
                {"Retry-After": str(limited.retry_after_s)},
                decision=f"deny:rate-{limited.kind}",
            )
        try:
            identity = self.auth.authenticate(request.headers.get("authorization"))
        except BastionError as exc:  # a refused token (or a store that cannot say): counted per address
            self.requests.auth_failure(client)
            raise AuthenticationFailed("invalid credentials") from exc
        seen["identity"] = identity
        if gate is not None and gate.refuses(identity=identity.name):
            raise _Blocked(403, "refused", "refused by an incident response")
        if self.audit is not None:  # fail closed: no request the audit trail cannot record
            if not self.audit.reserve():
                raise _Blocked(
                    503,
                    "audit_unavailable",
                    "the audit trail cannot record this request now; try again later",
                )
            seen["reserved"] = True
        body = await request.body()
        if len(body) > self.config.max_body_bytes:
            raise _Blocked(413, "too_large", "request body too large")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise _Blocked(400, "invalid_json", "request body is not JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("model", ""), str):
            raise _Blocked(400, "invalid_request", "expected a JSON object with a model")
        seen["model"] = str(payload.get("model") or "-")
        from bastion.access import allowed

        if not allowed(identity, "model:infer", model=str(payload.get("model", ""))):
            raise AccessDenied("not allowed to use this model")
        texts = prompt_texts(payload, kind)
        max_tokens = payload.get("max_tokens") or payload.get("max_completion_tokens") or 256
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise _Blocked(400, "invalid_request", "max_tokens must be a positive integer")
        self._limits(identity, math.ceil(sum(len(t) for _, t in texts) / 4) + max_tokens)
        self._scan_prompts(
            identity,
            texts,
            request.headers.get(self.config.session_header),
            str(payload.get("model", "-")),
        )
        path = _PATHS[kind]
        if payload.get("stream"):
            return StreamingResponse(
                self._stream(identity, path, payload, kind), media_type="text/event-stream"
            )
        return JSONResponse(await self._complete(identity, path, payload, kind))

    def _record(self, seen: dict[str, Any], client: str, kind: str, status: int, started: float) -> None:
        """One request record (the gateway's format) for every request, admitted or not."""
        if self.audit is None:
            return
        identity = seen["identity"]
        decision = seen["decision"] or ("allow" if status < 400 else f"status:{status}")
        self.audit.record(
            RequestRecord(
                identity=identity.name if identity is not None else "-",
                role=identity.role if identity is not None else "-",
                model=str(seen["model"])[:200],
                version="-",
                method="POST",
                path=_PATHS[kind],
                status=status,
                decision=decision,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                ts=time.time(),
                client=client,
            ),
            reserved=bool(seen["reserved"]),
        )

    async def _http(self) -> Any:
        """One aiohttp session per proxy (httpx's async client cost ~8 ms a request here, aiohttp < 1 ms)."""
        import aiohttp

        if self._client is None:
            headers = (
                {"Authorization": f"Bearer {self.config.upstream_api_key}"}
                if self.config.upstream_api_key
                else {}
            )
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.upstream_timeout_s), headers=headers
            )
        return self._client

    def _url(self, path: str) -> str:
        base = self.config.upstream.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        return base + path

    def _check_output(self, identity: Any, text: str) -> tuple[str, str | None]:
        """(text to return, finish_reason override) for a whole answer."""
        ctx = OutputContext(
            role=identity.role, canaries=self.context.canaries, system_prompt=self.context.system_prompt
        )
        verdict = self.policy.check(text, context=ctx)
        if verdict.action == "allow":
            return text, None
        details = {"findings": list(verdict.findings), "atlas": list(verdict.atlas), "mode": self.mode}
        if self.mode == "shadow":
            self._event(identity, "guard:output-flagged", "shadow", details)
            return text, None
        if verdict.blocked:
            self._event(identity, "guard:output-blocked", "denied", details)
            return "", "content_filter"
        self._event(identity, "guard:output-redacted", "ok", details)
        return verdict.text, None

    async def _complete(self, identity: Any, path: str, payload: dict[str, Any], kind: str) -> Any:
        import aiohttp

        try:
            async with (await self._http()).post(self._url(path), json=payload) as resp:
                if resp.status != 200:
                    raise _Blocked(502, "upstream_error", f"the upstream model answered {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _Blocked(502, "upstream_error", "the upstream model did not answer") from exc
        if not isinstance(data, dict):
            raise _Blocked(502, "upstream_error", "the upstream model answered no JSON object")
        for choice in data.get("choices", []):
            holder = choice.get("message", {}) if kind == "chat" else choice
            key = "content" if kind == "chat" else "text"
            text = holder.get(key)
            if isinstance(text, str):
                new, finish = self._check_output(identity, text)
                holder[key] = new
                if finish:
                    choice["finish_reason"] = finish
        return data

    async def _stream(
        self, identity: Any, path: str, payload: dict[str, Any], kind: str
    ) -> AsyncIterator[bytes]:
        ctx = OutputContext(
            role=identity.role, canaries=self.context.canaries, system_prompt=self.context.system_prompt
        )
        shadow = self.mode == "shadow"
        guard = StreamGuard(policy=self.policy, context=ctx)
        last: dict[str, Any] = {}
        flagged = False
        client = await self._http()
        try:
            async with client.post(self._url(path), json=payload) as resp:
                if resp.status != 200:
                    yield sse(
                        {
                            "error": {
                                "message": f"the upstream model answered {resp.status}",
                                "code": "upstream_error",
                            }
                        }
                    )
                    return
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    last = chunk
                    piece = chunk_text(chunk, kind)
                    if shadow:  # pass everything; audit the first finding only
                        if not flagged and guard.feed(piece).stop:
                            flagged = True
                            v = guard.stopped
                            self._event(
                                identity,
                                "guard:output-flagged",
                                "shadow",
                                {"findings": list(v.findings) if v else [], "stream": True},
                            )
                        yield sse(chunk)
                        continue
                    step = guard.feed(piece)
                    if step.stop:
                        v = step.verdict
                        self._event(
                            identity,
                            "guard:output-blocked",
                            "denied",
                            {"findings": list(v.findings) if v else [], "stream": True},
                        )
                        yield sse(with_text(chunk, kind, "", "content_filter"))
                        yield b"data: [DONE]\n\n"
                        return
                    if step.release or finish_reason(chunk):
                        yield sse(with_text(chunk, kind, step.release, None))
        except Exception as exc:  # the upstream went away mid-stream: end the stream cleanly
            log.warning("guard proxy: upstream stream failed (%s)", type(exc).__name__)
        if not shadow:
            step = guard.finish()
            if step.stop:
                self._event(
                    identity,
                    "guard:output-blocked",
                    "denied",
                    {"findings": list(step.verdict.findings) if step.verdict else [], "stream": True},
                )
                yield sse(with_text(last, kind, "", "content_filter"))
            elif step.release:
                yield sse(with_text(last, kind, step.release, None))
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.audit is not None:
            self.audit.close()
        self.requests.close()


def guard_proxy_for_vault(*, vault: Any, config: ProxyConfig) -> GuardProxy:
    """The proxy ``bastion guard serve`` runs for a project: tokens checked against the vault's identity
    store without one audit entry per refused token (the request records count them per client address,
    as at the gateway), request records and guard events in the vault's audit log, the signed response
    state of the home."""
    from bastion.respond.gate import ResponseGate
    from bastion.serve.auth import Authenticator
    from bastion.serve.server import token_verifier

    return GuardProxy(
        config=config,
        authenticator=Authenticator(verify_token=token_verifier(vault)),
        audit=vault.audit,
        response_gate=ResponseGate.for_vault(vault),
    )


__all__ = ["MODES", "GuardProxy", "ProxyConfig", "TokenBudget", "guard_proxy_for_vault", "new_canary"]
