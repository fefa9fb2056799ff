"""The output policy over a streamed OpenAI-format answer (SSE chunks): one hold-back
:class:`~bastion.guard.stream.StreamGuard` per choice and per text field, so ``n > 1`` choices stay apart by
index and tool calls, the deprecated ``function_call`` and reasoning reach the client, checked; a canary split
over two fields is caught too. Tool-call ids and names are checked whole; the chunks' own ids and model names
must be one token without a canary; unknown fields are dropped; ``logprobs`` are dropped (they would send
held-back text early). The non-streamed counterpart is :func:`bastion.guard.response.sanitize_answer`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from bastion.guard.policy import OutputVerdict
from bastion.guard.response import _MESSAGE_TEXT, Check, MalformedAnswer, _finish, _Tally, _token_ok, _top
from bastion.guard.stream import StreamGuard


class StreamSanitizer:
    """Upstream SSE chunks in, chunks safe to send out: one guard per choice and text field."""

    def __init__(
        self,
        kind: str,
        *,
        make_guard: Callable[[], StreamGuard],
        check: Check,
        canaries: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self._make = make_guard
        self._check = check
        self._token_ok = _token_ok(canaries)
        self._guards: dict[tuple[int, str], StreamGuard] = {}
        self._done: set[int] = set()
        self.seen: list[int] = []  # choice indexes, in order of appearance
        self.stopped: OutputVerdict | None = None
        self.tally = _Tally()
        self._top: dict[str, Any] = {}
        self._top_seen: dict[str, bool] = {}  # an id or model name is checked once, not on every chunk

    def _top_ok(self, value: str) -> bool:
        ok = self._top_seen.get(value)
        if ok is None:
            if len(self._top_seen) > 64:
                self._top_seen.clear()
            ok = self._top_seen[value] = self._token_ok(value)
        return ok

    def _guard(self, key: tuple[int, str]) -> StreamGuard:
        g = self._guards.get(key)
        if g is None:
            g = self._guards[key] = self._make()
        return g

    def _feed(self, key: tuple[int, str], piece: str) -> str:
        step = self._guard(key).feed(piece)
        if step.stop:
            self.stopped = step.verdict or OutputVerdict("block", "", (), (), ())
            return ""
        return step.release

    def _flush(self, index: int) -> dict[str, Any]:
        """Release what every guard of choice ``index`` still holds (its end of answer)."""
        delta: dict[str, Any] = {}
        calls: dict[int, str] = {}
        for (i, name), g in self._guards.items():
            if i != index:
                continue
            step = g.finish()
            if step.stop:
                self.stopped = step.verdict or OutputVerdict("block", "", (), (), ())
                return {}
            if step.release:
                if name.startswith("tool:"):
                    calls[int(name[5:])] = step.release
                elif name == "function_call":
                    delta[name] = {"arguments": step.release}
                else:
                    delta[name] = step.release
        if calls:
            delta["tool_calls"] = [
                {"index": j, "function": {"arguments": a}} for j, a in sorted(calls.items())
            ]
        return delta

    def _whole(self, value: Any) -> Any:
        """A short field sent whole (a tool call's id or name): checked as it is, never redacted."""
        if not isinstance(value, str):
            return None
        v = self._check(value)
        if v.action != "allow":
            self.tally.add(v)
            self.stopped = OutputVerdict("block", "", v.findings, v.atlas, v.owasp)
            return None
        return value

    def _choice(self, ch: dict[str, Any]) -> dict[str, Any] | None:
        index = ch["index"] if isinstance(ch.get("index"), int) else 0
        if index not in self.seen:
            self.seen.append(index)
        out: dict[str, Any] = {"index": index}
        finish = _finish(ch.get("finish_reason"))
        if self.kind == "chat":
            d: dict[str, Any] = ch["delta"] if isinstance(ch.get("delta"), dict) else {}
            delta: dict[str, Any] = {}
            if d.get("role") == "assistant":
                delta["role"] = "assistant"
            for name in _MESSAGE_TEXT:
                if isinstance(d.get(name), str) and d[name]:
                    r = self._feed((index, name), d[name])
                    if r:
                        delta[name] = r
            calls = []
            calls_in = d.get("tool_calls")
            for j, c in enumerate(calls_in if isinstance(calls_in, list) else []):
                if not isinstance(c, dict):
                    continue
                j = c["index"] if isinstance(c.get("index"), int) else j
                fn: dict[str, Any] = c["function"] if isinstance(c.get("function"), dict) else {}
                call: dict[str, Any] = {"index": j}
                if c.get("id") is not None:
                    call["id"] = self._whole(c.get("id"))
                    call["type"] = "function"
                fc: dict[str, Any] = {}
                if fn.get("name") is not None:
                    fc["name"] = self._whole(fn.get("name"))
                if isinstance(fn.get("arguments"), str) and fn["arguments"]:
                    fc["arguments"] = self._feed((index, f"tool:{j}"), fn["arguments"])
                if fc:
                    call["function"] = fc
                if len(call) > 1:
                    calls.append(call)
            if calls:
                delta["tool_calls"] = calls
            legacy = d.get("function_call")  # the deprecated single function call, streamed the same way
            if isinstance(legacy, dict):
                fcall: dict[str, Any] = {}
                if legacy.get("name") is not None:
                    fcall["name"] = self._whole(legacy.get("name"))
                if isinstance(legacy.get("arguments"), str) and legacy["arguments"]:
                    fcall["arguments"] = self._feed((index, "function_call"), legacy["arguments"])
                if fcall:
                    delta["function_call"] = fcall
        else:
            piece = ch.get("text")
            r = self._feed((index, "text"), piece) if isinstance(piece, str) and piece else ""
            delta = {"text": r} if r else {}
        if self.stopped is not None:
            return None
        if finish is not None and index not in self._done:
            self._done.add(index)
            rest = self._flush(index)
            if self.stopped is not None:
                return None
            for k, v in rest.items():
                if k == "tool_calls":
                    delta.setdefault("tool_calls", []).extend(v)
                elif k == "function_call":
                    fc = delta.setdefault("function_call", {})
                    fc["arguments"] = fc.get("arguments", "") + v["arguments"]
                else:
                    delta[k] = delta.get(k, "") + v
        if not delta and finish is None:
            return None
        if self.kind == "chat":
            out["delta"] = delta
        else:
            out["text"] = delta.get("text", "")
        out["finish_reason"] = finish
        return out

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        """The chunks to send for one upstream chunk (none once stopped; see :attr:`stopped`)."""
        if self.stopped is not None:
            return []
        if not isinstance(chunk, dict):
            raise MalformedAnswer("a streamed chunk is not an object")
        self._top = _top(chunk, self._top_ok) or self._top
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise MalformedAnswer("a streamed chunk has no list of choices")
        out = [c for c in (self._choice(ch) for ch in choices if isinstance(ch, dict)) if c is not None]
        self._across_fields()
        self._collect()
        if self.stopped is not None:
            return []
        if not out and not choices and "usage" in self._top:
            return [dict(self._top, choices=[])]
        return [dict(self._top, choices=out)] if out else []

    def finish(self) -> list[dict[str, Any]]:
        """The upstream ended: release what every unfinished choice still holds."""
        if self.stopped is not None:
            return []
        out = []
        for index in self.seen:
            if index in self._done:
                continue
            self._done.add(index)
            delta = self._flush(index)
            if self.stopped is not None:
                break
            if delta:
                c: dict[str, Any] = {"index": index, "finish_reason": None}
                if self.kind == "chat":
                    c["delta"] = delta
                else:
                    c["text"] = delta.get("text", "")
                out.append(c)
        self._collect()
        if self.stopped is not None:
            return []
        return [dict(self._top, choices=out)] if out else []

    def cut(self) -> dict[str, Any]:
        """The last chunk after a violation: every choice ends with ``content_filter``."""
        choices = []
        for index in self.seen or [0]:
            c: dict[str, Any] = {"index": index, "finish_reason": "content_filter"}
            if self.kind == "chat":
                c["delta"] = {}
            else:
                c["text"] = ""
            choices.append(c)
        return dict(self._top, choices=choices)

    def _across_fields(self) -> None:
        """A canary split over two fields or choices (half in the content, half in a tool call)."""
        if self.stopped is not None or len(self._guards) < 2:
            return
        guards = list(self._guards.values())
        canaries = guards[0].canary_skeletons
        if not canaries:
            return
        views = [g.skeleton_view() for g in guards]
        for a, b in itertools.permutations(views, 2):
            s = a + b
            if any(c in s or c[::-1] in s for c in canaries):
                self.stopped = OutputVerdict("block", "", ("canary",), ("AML.T0056",), ("LLM07:2025",))
                return

    def _collect(self) -> None:
        for g in self._guards.values():
            if g.findings:
                self.tally.add(OutputVerdict("redact", "", tuple(g.findings), (), ()))
        if self.stopped is not None:
            self.tally.add(self.stopped)


__all__ = ["StreamSanitizer"]
