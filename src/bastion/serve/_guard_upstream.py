"""The guarded proxy's upstream side: the one HTTP session to the OpenAI-compatible upstream, whole answers
checked and rebuilt from the fields the guard knows (:func:`bastion.guard.response.sanitize_answer`), streamed
answers relayed through :class:`~bastion.guard.streamed.StreamSanitizer`, one audit entry per answer with a
finding, and the answers remembered per identity (:class:`GuardUpstream`, a part of
:class:`~bastion.serve.guard_proxy.GuardProxy`, which provides the attributes it reads)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse

from bastion.guard.policy import OutputContext, OutputPolicy, OutputVerdict
from bastion.guard.response import MalformedAnswer, sanitize_answer
from bastion.guard.stream import StreamGuard
from bastion.guard.streamed import StreamSanitizer
from bastion.guard.wire import sse
from bastion.serve._guard_checks import Blocked

if TYPE_CHECKING:
    from bastion.serve._guard_config import AnswerMemory, ProxyConfig

log = logging.getLogger("bastion.guard")


class GuardUpstream:
    """The upstream call and the output checks; the proxy provides the attributes declared below."""

    if TYPE_CHECKING:
        config: ProxyConfig
        policy: OutputPolicy
        context: OutputContext
        answers: AnswerMemory
        _client: Any

        @property
        def mode(self) -> str: ...

        def _event(self, identity: Any, action: str, outcome: str, details: dict[str, Any]) -> None: ...

    async def _remembering(self, identity: Any, frames: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass a streamed answer's frames on as they are, keeping each choice's text: once the stream ends,
        the answer the client received is remembered (its assistant turn sent back is not a prompt)."""
        texts: dict[int, list[str]] = {}
        async for frame in frames:
            if isinstance(frame, bytes) and frame.startswith(b"data: {"):
                try:
                    for ch in json.loads(frame[6:]).get("choices") or []:
                        piece = (ch.get("delta") or {}).get("content")
                        if isinstance(piece, str):
                            texts.setdefault(int(ch.get("index") or 0), []).append(piece)
                except (ValueError, AttributeError, TypeError):
                    pass
            yield frame
        for parts in texts.values():
            self.answers.remember(identity.id, "".join(parts))

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

    def _output_context(self, identity: Any) -> OutputContext:
        return OutputContext(
            role=identity.role, canaries=self.context.canaries, system_prompt=self.context.system_prompt
        )

    def _output_check(self, identity: Any, mode: str) -> Any:
        """The output policy for this caller; ``redact`` mode redacts PII and links the policy would block."""
        ctx, prefer_redact = self._output_context(identity), mode == "redact"
        return lambda text: self.policy.check(text, context=ctx, prefer_redact=prefer_redact)

    def _audit_output(self, identity: Any, verdict: OutputVerdict, mode: str, *, stream: bool) -> None:
        """One audit entry per answer with a finding (blocked, redacted, or flagged in shadow mode), streamed
        or not (attack16 L1: streamed redactions and shadow findings left none); reasons only, never text."""
        if verdict.action == "allow" and not verdict.findings:
            return
        details: dict[str, Any] = {
            "findings": list(verdict.findings)[:20],
            "atlas": list(verdict.atlas),
            "mode": mode,
        }
        if stream:
            details["stream"] = True
        if mode == "shadow":
            self._event(identity, "guard:output-flagged", "shadow", details)
        elif verdict.blocked:
            self._event(identity, "guard:output-blocked", "denied", details)
        else:
            self._event(identity, "guard:output-redacted", "ok", details)

    async def _complete(self, identity: Any, path: str, payload: dict[str, Any], kind: str) -> Any:
        """A whole answer: every text-bearing field checked, the answer rebuilt from known fields only
        (:func:`bastion.guard.response.sanitize_answer`; attack16 H2)."""
        import aiohttp

        try:
            async with (await self._http()).post(self._url(path), json=payload) as resp:
                if resp.status != 200:
                    raise Blocked(502, "upstream_error", f"the upstream model answered {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise Blocked(502, "upstream_error", "the upstream model did not answer") from exc
        mode = self.mode
        try:
            result = sanitize_answer(
                data, kind, check=self._output_check(identity, mode), canaries=self.context.canaries
            )
        except MalformedAnswer as exc:
            raise Blocked(
                502, "upstream_error", "the upstream model's answer has an unexpected shape"
            ) from exc
        self._audit_output(identity, result.verdict, mode, stream=False)
        return data if mode == "shadow" else result.body

    async def _stream_response(self, identity: Any, path: str, payload: dict[str, Any], kind: str) -> Any:
        """Open the upstream stream before answering, so an upstream that refuses is a 502 with its request
        record (attack16 L1: it was a 200 / allow with the error inside the stream)."""
        import aiohttp

        try:
            resp = await (await self._http()).post(self._url(path), json=payload)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Blocked(502, "upstream_error", "the upstream model did not answer") from exc
        if resp.status != 200:
            resp.release()
            raise Blocked(502, "upstream_error", f"the upstream model answered {resp.status}")
        return StreamingResponse(self._stream(identity, resp, kind), media_type="text/event-stream")

    async def _stream(self, identity: Any, resp: Any, kind: str) -> AsyncIterator[bytes]:
        """Relay the upstream's SSE through :class:`~bastion.guard.streamed.StreamSanitizer`: one hold-back
        guard per choice and text field (content, reasoning, refusal, tool-call arguments), cut with
        ``content_filter`` on a violation; shadow mode relays the upstream's chunks as they are."""
        mode = self.mode
        shadow = mode == "shadow"
        ctx = self._output_context(identity)
        san = StreamSanitizer(
            kind,
            make_guard=lambda: StreamGuard(policy=self.policy, context=ctx, prefer_redact=mode == "redact"),
            check=self._output_check(identity, mode),
            canaries=self.context.canaries,
        )
        failed = None
        try:
            try:
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    out = san.feed(chunk)
                    if shadow:
                        yield sse(chunk)
                        continue
                    if san.stopped is not None:
                        break
                    for c in out:
                        yield sse(c)
            except Exception as exc:  # the upstream went away or sent garbage mid-stream: end it cleanly
                failed = type(exc).__name__
                log.warning("guard proxy: upstream stream failed (%s)", failed)
            finally:
                resp.release()
            if failed is not None:
                self._event(
                    identity, "guard:upstream-stream-error", "error", {"error": failed, "stream": True}
                )
            if san.stopped is None:
                tail = san.finish()
                if not shadow:
                    for c in tail:
                        yield sse(c)
            if san.stopped is not None and not shadow:
                yield sse(san.cut())
            yield b"data: [DONE]\n\n"
        finally:
            self._audit_output(identity, san.tally.verdict(), mode, stream=True)
