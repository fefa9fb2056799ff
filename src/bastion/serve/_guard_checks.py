"""The guarded proxy's request side: its refusals (:class:`Blocked`, one request-record decision each, one
JSON error body), the audit events, the request and token limits per identity, and the prompt scan with the
multi-turn session score (:class:`GuardRequestChecks`, a part of
:class:`~bastion.serve.guard_proxy.GuardProxy`, which provides the attributes it reads)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bastion.errors import InvalidInput

if TYPE_CHECKING:
    from bastion.guard.detector import PromptDetector
    from bastion.guard.policy import SessionScore
    from bastion.serve._guard_config import ProxyConfig, TokenBudget
    from bastion.serve.observability import BatchedAuditWriter
    from bastion.serve.ratelimit import RateLimiter

log = logging.getLogger("bastion.guard")

# the request record's decision for each refusal (what the event collector maps to a kind)
DECISIONS = {
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
PATHS = {"chat": "/v1/chat/completions", "text": "/v1/completions"}


class Blocked(Exception):
    """A refusal: its HTTP status, the code in the JSON error body and the request record's decision."""

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
        self.decision = decision or DECISIONS.get(code, f"deny:{code}")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import JSONResponse

    body = {"error": {"message": message, "type": "bastion_guard", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class GuardRequestChecks:
    """The checks before the upstream is called; the proxy provides the attributes declared below."""

    if TYPE_CHECKING:
        config: ProxyConfig
        detector: PromptDetector
        sessions: SessionScore
        requests: RateLimiter
        tokens: TokenBudget
        audit: BatchedAuditWriter | None

        @property
        def mode(self) -> str: ...

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
            raise Blocked(
                429,
                "rate_limited",
                "request rate limit exceeded",
                {"Retry-After": str(decision.retry_after_s)},
            )
        per_min = self.config.tokens_per_minute.get(identity.role, self.config.default_tokens_per_minute)
        if not self.tokens.take(identity.id, tokens, per_minute=per_min):
            raise Blocked(429, "token_rate_limited", "token rate limit exceeded", {"Retry-After": "60"})

    def _scan_prompts(
        self, identity: Any, texts: list[tuple[str, str]], session: str | None, model: str = "-"
    ) -> None:
        worst = None
        try:
            scan_messages = getattr(self.detector, "scan_messages", None)  # a detector without it: each text
            templates = self.config.templates  # the operator's own prompt text is not scanned (round 24)
            kw = {"templates": templates} if templates else {}
            verdicts = (
                scan_messages(texts, **kw)  # each text, and per channel their concatenation
                if scan_messages is not None
                else [self.detector.scan(t, channel=ch, **kw) for ch, t in texts if t]
            )
        except InvalidInput:
            raise
        except Exception as exc:
            if self.config.unsafe_fail_open:
                log.warning(
                    "guard detector failed (%s); passing the request (unsafe_fail_open)", type(exc).__name__
                )
                return
            raise Blocked(503, "guard_unavailable", "the guard could not inspect the request") from exc
        for v in verdicts:
            if worst is None or v.score - v.threshold > worst.score - worst.threshold:
                worst = v
        if worst is None:
            return
        flagged = worst.flagged
        reasons = list(worst.reasons)
        # the multi-turn score per authenticated identity, and per conversation when the client names one
        # (attack16 M6: keyed only by the client's header, leaving it out or rotating it reset the score).
        # Only prompts below the threshold add to it: it catches a build-up of mild turns; a prompt refused
        # on its own adds nothing, so one caller's refused attacks do not refuse the identity's next prompts
        keys = [identity.id] + ([f"{identity.id}:{session}"] if session else [])
        for key in keys if not flagged else ():
            total, over = self.sessions.add(key, worst.score)
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
        raise Blocked(
            400,
            "prompt_blocked",
            "the request was blocked by the bastion guard: " + ", ".join(worst.categories),
        )
