"""The guarded proxy: an OpenAI-compatible endpoint in front of any OpenAI-compatible upstream.

``/v1/chat/completions`` and ``/v1/completions`` (streaming SSE included) pass through when the caller is
authenticated (bastion API tokens or JWTs, via the gateway's :class:`~bastion.serve.auth.Authenticator`),
holds ``model:infer`` on the requested model, is within its rate limits (requests per minute by role, via
the gateway's :class:`~bastion.serve.ratelimit.RateLimiter`, and tokens per minute: the prompt's estimate
plus ``max(max_tokens, max_completion_tokens) × max(n, best_of)``, charged before the upstream is called, a
default cap forwarded when none is named) and every client text the model reads passes the detector: user,
assistant and tool messages, content parts, tool-call history, tool and function definitions,
``response_format``, completions ``prompt`` and ``suffix``. A field the guard does not inspect is refused
(400), never forwarded unscanned; system and developer messages only from roles in ``system_roles`` (403
otherwise; their text is the operator's instructions: counted, not scanned). Answers go
through the output policy; streamed answers through :class:`~bastion.guard.stream.StreamGuard`, which cuts
the stream before a violating span is sent.

Modes: ``block`` (refuse flagged prompts, block or redact outputs as the output policy says), ``redact``
(like block for prompts; for outputs, PII and links that the policy would block are redacted instead, while
canaries, system-prompt runs, deny lists and topics, which cannot be redacted, still block), ``shadow`` (log
and audit only; nothing is changed). Every output field that carries text is checked — content (string or
parts), refusal, reasoning, tool-call ids, names and arguments, logprobs (removed unless the answer passed
unchanged) — and an answer is rebuilt from the fields the guard knows (:mod:`bastion.guard.response`);
streamed tool calls, reasoning and ``n > 1`` choices are relayed apart, each through its own hold-back guard.
Every block, redaction and shadow finding, streamed or not, is one audit-log entry (never the text, only
reasons and IDs); an upstream that refuses a stream is a 502.
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
layer-5 guard; the guard may not import the gateway). Its parts: the settings and token budget in
:mod:`~bastion.serve._guard_config`, the request checks in :mod:`~bastion.serve._guard_checks`, the upstream
call and output checks in :mod:`~bastion.serve._guard_upstream`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from bastion.errors import AccessDenied, AuthenticationFailed, BastionError, InvalidInput
from bastion.guard.detector import PromptDetector
from bastion.guard.policy import OutputContext, OutputPolicy, SessionScore
from bastion.guard.wire import TRUSTED, prompt_texts
from bastion.serve._guard_checks import PATHS, Blocked, GuardRequestChecks, error_response
from bastion.serve._guard_config import MODES, AnswerMemory, ProxyConfig, TokenBudget, request_cost
from bastion.serve._guard_upstream import GuardUpstream
from bastion.serve.config import RateLimitConfig
from bastion.serve.connections import client_host
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.serve.ratelimit import RateLimiter

log = logging.getLogger("bastion.guard")


def new_canary() -> str:
    """A fresh canary token to plant in a system prompt (leaking it is caught by the output policy)."""
    return f"bastion-canary-{secrets.token_hex(8)}"


class GuardProxy(GuardRequestChecks, GuardUpstream):
    """The proxy: its state, the app and the request pipeline; the prompt checks and limits are
    :class:`~bastion.serve._guard_checks.GuardRequestChecks`, the upstream call and the output checks
    :class:`~bastion.serve._guard_upstream.GuardUpstream`."""

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
        self.answers = AnswerMemory()
        self._extra_fields = frozenset(config.extra_fields)
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
            response: Any = None  # whatever happens below: one request record, the audit slot released (M3)
            try:
                response = await self._handle(request, kind, client, seen)
            except AuthenticationFailed:
                seen["decision"] = "deny:auth"
                response = error_response(
                    401, "unauthenticated", "missing or invalid credentials", {"WWW-Authenticate": "Bearer"}
                )
            except AccessDenied as exc:
                seen["decision"] = "deny:forbidden"
                response = error_response(403, "forbidden", str(exc) or "not allowed")
            except InvalidInput as exc:
                seen["decision"] = "reject:request"
                response = error_response(400, "invalid_request", str(exc))
            except Blocked as exc:
                seen["decision"] = exc.decision
                response = error_response(exc.status, exc.code, exc.message, exc.headers)
            except Exception as exc:  # a bug or an answer nobody foresaw: refused, never passed unchecked
                log.warning("guard proxy: request failed (%s)", type(exc).__name__)
                seen["decision"] = "error:internal"
                response = error_response(
                    500, "internal_error", "the guard proxy could not handle this request"
                )
            finally:
                if response is None:  # cancelled before an answer (the client went away)
                    seen["decision"] = seen["decision"] or "error:cancelled"
                status = int(response.status_code) if response is not None else 499
                self._record(seen, client, kind, status, started)
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
            raise Blocked(403, "refused", "refused by an incident response")
        limited = self.requests.address(client)
        if not limited.allowed:
            raise Blocked(
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
            raise Blocked(403, "refused", "refused by an incident response")
        if self.audit is not None:  # fail closed: no request the audit trail cannot record
            if not self.audit.reserve():
                raise Blocked(
                    503,
                    "audit_unavailable",
                    "the audit trail cannot record this request now; try again later",
                )
            seen["reserved"] = True
        body = await request.body()
        if len(body) > self.config.max_body_bytes:
            raise Blocked(413, "too_large", "request body too large")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise Blocked(400, "invalid_json", "request body is not JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("model", ""), str):
            raise Blocked(400, "invalid_request", "expected a JSON object with a model")
        seen["model"] = str(payload.get("model") or "-")
        from bastion.access import allowed

        if not allowed(identity, "model:infer", model=str(payload.get("model", ""))):
            raise AccessDenied("not allowed to use this model")
        # every client text the model reads, or a refusal: unknown fields 400, system/developer messages 403
        # unless the identity's role may send them (attack16 H1), malformed text 400 before the detector (H7)
        texts = prompt_texts(
            payload,
            kind,
            allow_system=identity.role in self.config.system_roles,
            known_answer=lambda text: self.answers.known(identity.id, text),
            extra_fields=self._extra_fields,
        )
        self._limits(identity, request_cost(payload, kind, texts, config=self.config))
        self._scan_prompts(
            identity,
            [(ch, t) for ch, t in texts if ch != TRUSTED and t],
            request.headers.get(self.config.session_header),
            str(payload.get("model", "-")),
        )
        path = PATHS[kind]
        if payload.get("stream"):
            response = await self._stream_response(identity, path, payload, kind)
            if kind == "chat":
                response.body_iterator = self._remembering(identity, response.body_iterator)
            return response
        try:
            answer = await self._complete(identity, path, payload, kind)
        except Blocked:
            raise
        except Exception as exc:  # an answer of an unexpected shape is never returned unchecked (M3)
            log.warning("guard proxy: upstream answer could not be checked (%s)", type(exc).__name__)
            raise Blocked(502, "upstream_error", "the upstream model's answer could not be checked") from exc
        choices = answer.get("choices") if kind == "chat" and isinstance(answer, dict) else None
        for choice in choices if isinstance(choices, list) else []:
            message = choice.get("message") if isinstance(choice, dict) else None
            text = message.get("content") if isinstance(message, dict) else None
            if isinstance(text, str):
                self.answers.remember(identity.id, text)
        return JSONResponse(answer)

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
                path=PATHS[kind],
                status=status,
                decision=decision,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                ts=time.time(),
                client=client,
            ),
            reserved=bool(seen["reserved"]),
        )

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
