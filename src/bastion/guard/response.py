"""The output policy over whole OpenAI-format answers and streams: every field that carries text is checked,
everything else is rebuilt from the fields the guard knows (fail closed: an unknown field is dropped).

Non-streamed (:func:`sanitize_answer`): per choice the message ``content`` (a string or text parts),
``refusal``, ``reasoning_content`` / ``reasoning``, each tool call's ``id``, ``function.name`` and
``function.arguments`` (read as JSON too, so ``\\uXXXX`` escapes hide nothing), ``function_call``; for
completions ``text``. All texts of the answer together are checked once more, so a canary or a system-prompt
run split across fields or choices still blocks. ``logprobs`` are kept only when the answer passed unchanged
and their own token texts (and each rank of alternatives) pass too; otherwise they are removed, since they
repeat the text token by token. Unknown message, choice and top-level fields (``prompt_logprobs``,
``annotations``, audio, vendor extensions) are dropped; ``usage`` keeps its numbers only.

Streamed answers: :class:`bastion.guard.streamed.StreamSanitizer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.guard.leaks import canary_in
from bastion.guard.policy import OutputVerdict

Check = Callable[[str], OutputVerdict]

_TOP = ("id", "object", "created", "model", "system_fingerprint", "service_tier")
_MESSAGE_TEXT = ("content", "refusal", "reasoning_content", "reasoning")
_PART_TEXT = {"text": "text", "output_text": "text", "refusal": "refusal"}
_FINISH = re.compile(r"^[a-z_]{1,32}$")
_ORDER = {"allow": 0, "redact": 1, "block": 2}


class MalformedAnswer(ValueError):
    """The upstream's answer does not have the shape of an OpenAI answer."""


@dataclass
class _Tally:
    action: str = "allow"
    findings: list[str] = field(default_factory=list)
    atlas: list[str] = field(default_factory=list)
    owasp: list[str] = field(default_factory=list)

    def add(self, v: OutputVerdict) -> None:
        if _ORDER[v.action] > _ORDER[self.action]:
            self.action = v.action
        for mine, theirs in ((self.findings, v.findings), (self.atlas, v.atlas), (self.owasp, v.owasp)):
            mine.extend(x for x in theirs if x not in mine)

    def verdict(self) -> OutputVerdict:
        return OutputVerdict(self.action, "", tuple(self.findings), tuple(self.atlas), tuple(self.owasp))


def _numbers(value: Any, depth: int = 0) -> Any:
    """``usage`` and the like: numbers (and objects of numbers) only."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict) and depth < 4:
        out = {str(k)[:64]: _numbers(v, depth + 1) for k, v in value.items() if isinstance(k, str)}
        return {k: v for k, v in out.items() if v is not None} or None
    return None


_OBJECTS = frozenset(("chat.completion", "chat.completion.chunk", "text_completion"))


_TOKEN = re.compile(r"^[\w.:/@+=-]{0,200}$")


def _token_ok(canaries: tuple[str, ...]) -> Callable[[str], bool]:
    """An id or a model name the server sets: one token (no prose fits in it) and no canary in any form."""
    return lambda v: bool(_TOKEN.match(v)) and not any(canary_in(v, c) for c in canaries)


def _top(data: dict[str, Any], ok: Callable[[str], bool]) -> dict[str, Any]:
    """The answer's own fields: ids and names kept when they pass ``ok`` together, ``object`` one of the
    known kinds, numbers."""
    out: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for k in _TOP:
        v = data.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
        elif k == "object":
            if v in _OBJECTS:
                out[k] = v
        elif isinstance(v, str) and len(v) <= 200:
            texts[k] = v
    if texts and ok("\n".join(texts.values())):
        out.update(texts)
    usage = _numbers(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def _finish(value: Any) -> str | None:
    if isinstance(value, str) and _FINISH.match(value):
        return value
    return None if value is None else "stop"


class _Fields:
    """The text fields of one answer: read them, check them, write the checked text back."""

    def __init__(self, check: Check, tally: _Tally) -> None:
        self.check, self.tally = check, tally
        self.texts: list[str] = []  # after redaction, for the whole-answer check
        self.changed = False

    def text(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        v = self.check(value)
        self.tally.add(v)
        if v.action != "allow":
            self.changed = True
        out = "" if v.blocked else v.text
        self.texts.append(out)
        return out

    def arguments(self, value: Any) -> str | None:
        """Tool-call arguments: the JSON as sent and as decoded; a redaction must leave valid JSON."""
        if not isinstance(value, str):
            return None
        try:
            decoded = json.dumps(json.loads(value), ensure_ascii=False)
        except (ValueError, RecursionError):
            return self.text(value)
        if decoded == value:
            return self.text(value)
        raw, dec = self.check(value), self.check(decoded)
        self.tally.add(raw)
        self.tally.add(dec)
        if raw.action == "allow" and dec.action == "allow":
            self.texts.append(value)
            return value
        self.changed = True
        out = dec.text if dec.action == "redact" and not raw.blocked else ""
        try:
            json.loads(out)
        except ValueError:  # blocked, or a redaction that broke the JSON: nothing of it is sent
            self.tally.add(OutputVerdict("block", "", (), (), ()))
            out = ""
        self.texts.append(out)
        return out


def _logprob_texts(lp: Any) -> list[str]:
    """The token texts a ``logprobs`` object spells, in order, and each rank of alternatives."""
    texts: list[str] = []
    if not isinstance(lp, dict):
        return texts
    for key in ("content", "refusal"):  # chat
        items = lp.get(key)
        if isinstance(items, list):
            texts.append("".join(str(i.get("token", "")) for i in items if isinstance(i, dict)))
            tops = [i.get("top_logprobs") or [] for i in items if isinstance(i, dict)]
            for r in range(max((len(t) for t in tops if isinstance(t, list)), default=0)):
                texts.append(
                    "".join(
                        str(t[r].get("token", ""))
                        for t in tops
                        if isinstance(t, list) and len(t) > r and isinstance(t[r], dict)
                    )
                )
    if isinstance(lp.get("tokens"), list):  # completions
        texts.append("".join(str(t) for t in lp["tokens"]))
        tops = [t for t in lp.get("top_logprobs") or [] if isinstance(t, dict)]
        for r in range(max((len(t) for t in tops), default=0)):
            texts.append("".join(list(t)[r] for t in tops if len(t) > r))
    return texts


def _clean_logprobs(lp: Any) -> Any:
    """The logprobs object with only its token texts and numbers (no ``bytes``, nothing unknown)."""
    if not isinstance(lp, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("content", "refusal"):
        items = lp.get(key)
        if isinstance(items, list):
            out[key] = [
                {
                    "token": str(i.get("token", "")),
                    "logprob": _numbers(i.get("logprob")),
                    "top_logprobs": [
                        {"token": str(t.get("token", "")), "logprob": _numbers(t.get("logprob"))}
                        for t in i.get("top_logprobs") or []
                        if isinstance(t, dict)
                    ],
                }
                for i in items
                if isinstance(i, dict)
            ]
    if isinstance(lp.get("tokens"), list):
        out["tokens"] = [str(t) for t in lp["tokens"]]
        for key in ("token_logprobs", "text_offset"):
            if isinstance(lp.get(key), list):
                out[key] = [_numbers(x) for x in lp[key]]
        if isinstance(lp.get("top_logprobs"), list):
            out["top_logprobs"] = [
                {str(k): _numbers(v) for k, v in t.items()} if isinstance(t, dict) else None
                for t in lp["top_logprobs"]
            ]
    return out or None


def _calls(calls: Any, f: _Fields) -> list[dict[str, Any]] | None:
    if not isinstance(calls, list):
        return None
    out = []
    for c in calls:
        if not isinstance(c, dict):
            continue
        fn: dict[str, Any] = c["function"] if isinstance(c.get("function"), dict) else {}
        call: dict[str, Any] = {"type": "function"}
        if isinstance(c.get("index"), int):
            call["index"] = c["index"]
        if isinstance(c.get("id"), str):
            call["id"] = f.text(c["id"])
        call["function"] = {
            "name": f.text(fn.get("name")) or "",
            "arguments": f.arguments(fn.get("arguments")),
        }
        if call["function"]["arguments"] is None:
            call["function"]["arguments"] = ""
        out.append(call)
    return out


def _choice(choice: Any, kind: str, f: _Fields) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise MalformedAnswer("a choice is not an object")
    out: dict[str, Any] = {"index": choice["index"] if isinstance(choice.get("index"), int) else 0}
    if kind == "chat":
        msg = choice.get("message")
        if not isinstance(msg, dict):
            raise MalformedAnswer("a choice has no message")
        m: dict[str, Any] = {"role": "assistant"}
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                key = _PART_TEXT.get(str(p.get("type"))) if isinstance(p, dict) else None
                if key is not None:  # image, audio or unknown parts cannot be checked: dropped
                    parts.append({"type": p["type"], key: f.text(p.get(key)) or ""})
            m["content"] = parts
        else:
            m["content"] = f.text(content)
        for key in _MESSAGE_TEXT[1:]:
            if isinstance(msg.get(key), str):
                m[key] = f.text(msg[key])
        calls = _calls(msg.get("tool_calls"), f)
        if calls:
            m["tool_calls"] = calls
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            m["function_call"] = {
                "name": f.text(fc.get("name")) or "",
                "arguments": f.arguments(fc.get("arguments")) or "",
            }
        out["message"] = m
    else:
        out["text"] = f.text(choice.get("text")) or ""
    out["finish_reason"] = _finish(choice.get("finish_reason"))
    if isinstance(choice.get("stop_reason"), int) and not isinstance(choice.get("stop_reason"), bool):
        out["stop_reason"] = choice["stop_reason"]
    return out


def _blocked_choice(c: dict[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"index": c["index"], "finish_reason": "content_filter", "logprobs": None}
    if kind == "chat":
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["text"] = ""
    return out


@dataclass(frozen=True)
class Sanitized:
    """The answer to send and the worst verdict on its fields (findings of all of them)."""

    body: dict[str, Any]
    verdict: OutputVerdict


def sanitize_answer(data: Any, kind: str, *, check: Check, canaries: tuple[str, ...] = ()) -> Sanitized:
    """Check every text of a non-streamed answer; return it rebuilt from known fields, redacted or blocked
    per choice. Raises :class:`MalformedAnswer` when it has no list of choices of the expected shape."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise MalformedAnswer("the answer has no list of choices")
    tally = _Tally()
    body = _top(data, _token_ok(canaries))
    choices, all_texts = [], []
    for raw in data["choices"]:
        f = _Fields(check, _Tally())
        c = _choice(raw, kind, f)
        lp = raw.get("logprobs")
        if lp is not None:
            if not f.changed and f.tally.action == "allow":
                lp_tally = _Tally()
                for t in _logprob_texts(lp):
                    if t:
                        lp_tally.add(check(t))
                f.tally.add(lp_tally.verdict())
                c["logprobs"] = _clean_logprobs(lp) if lp_tally.action == "allow" else None
            else:
                c["logprobs"] = None
        if f.tally.action == "block":
            c = _blocked_choice(c, kind)
        else:
            all_texts.extend(f.texts)
        tally.add(f.tally.verdict())
        choices.append(c)
    if len(all_texts) > 1:  # a canary or a system-prompt run split over fields or choices
        whole = check("\n".join(all_texts))
        if whole.blocked:
            tally.add(whole)
            choices = [_blocked_choice(c, kind) for c in choices]
    body["choices"] = choices
    return Sanitized(body, tally.verdict())


__all__ = ["Check", "MalformedAnswer", "Sanitized", "sanitize_answer"]
