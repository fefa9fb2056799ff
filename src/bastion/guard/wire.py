"""OpenAI wire format for the guarded proxy: the texts to scan in a request, and SSE chunks in and out."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from bastion.errors import AccessDenied, InvalidInput

# what a request may carry, by field: anything else is refused (400), never forwarded unscanned (issue 16
# attack16 H1). Texts the model reads are scanned; the rest are type-checked here.
_NUMBERS = frozenset(
    {"temperature", "top_p", "presence_penalty", "frequency_penalty", "top_k", "min_p", "repetition_penalty"}
)
_INTS = frozenset(
    {"max_tokens", "max_completion_tokens", "n", "best_of", "seed", "top_logprobs", "min_tokens"}
)
_BOOLS = frozenset({"stream", "echo", "parallel_tool_calls", "ignore_eos", "skip_special_tokens", "store"})
_OTHER = frozenset(
    {"model", "messages", "prompt", "suffix", "stop", "stop_token_ids", "logprobs", "logit_bias", "user"}
    | {"stream_options", "tools", "tool_choice", "functions", "function_call", "response_format"}
    | {"reasoning_effort"}
)
_CHAT_ONLY = frozenset(
    {"messages", "tools", "tool_choice", "functions", "function_call", "response_format", "reasoning_effort"}
    | {"parallel_tool_calls", "max_completion_tokens", "top_logprobs"}
)
_TEXT_ONLY = frozenset({"prompt", "suffix", "echo", "best_of"})
_MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "function_call", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
    "function": frozenset({"role", "content", "name"}),
}
_PART_TEXT = {"text": "text", "input_text": "text", "refusal": "refusal"}  # content part type -> its text key
# the "channel" of system/developer text from a role allowed to send it: the operator's, counted, not scanned
TRUSTED = "system"
_MAX_DEPTH = 32


def _text(value: Any, where: str) -> str:
    """A client string the model reads: text, and valid Unicode (a lone surrogate is refused here, before the
    detector sees it: attack16 H7 made the detector raise and, fail-open, passed the text unscanned)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where} is not valid Unicode text (lone surrogate)") from None
    return value


def _strings(value: Any, where: str, depth: int = 0) -> list[str]:
    """Every string (keys too) of a JSON value, in order: a tool schema's names, descriptions and enums."""
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"{where} is nested too deeply")
    if isinstance(value, str):
        return [_text(value, where)]
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.append(_text(k, where))
            out.extend(_strings(v, where, depth + 1))
        return out
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, where, depth + 1)]
    if value is None or isinstance(value, (bool, int, float)):
        return []
    raise InvalidInput(f"{where} has a value of an unexpected type")


_SCHEMA_TYPES = frozenset(
    {
        "function",
        "object",
        "string",
        "number",
        "integer",
        "boolean",
        "array",
        "null",
        "json_schema",
        "json_object",
    }
    | {"text"}
)


def _schema_texts(value: Any) -> list[str]:
    """What the model reads of a tool definition or schema: names, descriptions, enums and property names,
    without the JSON-schema vocabulary (``type``, ``properties``...), which dilutes the score (strings already
    checked by :func:`_strings`)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _schema_texts(v)]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for k, v in value.items():
        if k == "properties" and isinstance(v, dict):
            for name, spec in v.items():
                out.append(name)
                out.extend(_schema_texts(spec))
        elif not (k == "type" and v in _SCHEMA_TYPES):  # any other "type" value is read like the rest
            out.extend(_schema_texts(v))
    return out


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # content parts: text only; an image, audio or file cannot be inspected
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            key = _PART_TEXT.get(kind) if isinstance(kind, str) else None
            if key is None or set(part) - {"type", key}:
                raise InvalidInput(f"{where}: only text content parts can be inspected by the guard")
            texts.append(_text(part.get(key), where))
        return "\n".join(texts)
    return _text(value, where)


def _calls(m: dict[str, Any], where: str) -> list[str]:
    """The names and arguments of an earlier answer's tool or function calls (client-supplied history)."""
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidInput(f"{where}.tool_calls must be a list")
    for c in calls:
        if not isinstance(c, dict) or set(c) - {"id", "type", "function", "index"}:
            raise InvalidInput(f"{where}.tool_calls: unexpected fields")
    fns = [c.get("function") for c in calls]
    if m.get("function_call") is not None:
        fns.append(m["function_call"])
    out: list[str] = []
    for f in fns:
        if not isinstance(f, dict) or set(f) - {"name", "arguments"}:
            raise InvalidInput(f"{where}: a call must name a function and its arguments")
        out.extend(_text(f.get(k, ""), where) for k in ("name", "arguments"))
    return out + _strings([c.get("id", "") for c in calls], where)


def _message(
    m: Any, i: int, *, allow_system: bool, known: Callable[[str], bool] | None = None
) -> list[tuple[str, str]]:
    where = f"messages[{i}]"
    role = m.get("role") if isinstance(m, dict) else None
    if not isinstance(m, dict) or role not in _MESSAGE_KEYS:
        raise InvalidInput(f"{where} must be an object with a role of {', '.join(_MESSAGE_KEYS)}")
    extra = set(m) - _MESSAGE_KEYS[role]
    if extra:
        raise InvalidInput(f"{where}: fields the guard does not inspect: {', '.join(sorted(extra))[:200]}")
    texts = [_content(m.get("content"), where)]
    if role == "assistant" and known is not None and texts[0] and known(texts[0]):
        texts = []  # an answer this proxy returned (it passed the output policy): not a prompt
    texts += [_text(m[k], where) for k in ("name", "tool_call_id", "refusal") if m.get(k) is not None]
    if role == "assistant":
        texts += _calls(m, where)
    if role in ("system", "developer"):
        if not allow_system:
            raise AccessDenied(f"this token may not send {role} messages")
        channel = TRUSTED
    else:
        channel = "tool" if role in ("tool", "function") else "user"
    return [(channel, "\n".join(t for t in texts if t))]


def _check_fields(payload: dict[str, Any], kind: str, extra: frozenset[str]) -> None:
    for key, value in payload.items():
        if key in extra:
            continue
        if key not in _NUMBERS | _INTS | _BOOLS | _OTHER or key in (
            _TEXT_ONLY if kind == "chat" else _CHAT_ONLY
        ):
            raise InvalidInput(
                f"unexpected request field {key[:60]!r}: the guard forwards only what it inspects"
            )
        if value is None:
            continue
        if key in _NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidInput(f"{key} must be a number")
        if key in _INTS and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"{key} must be an integer")
        if key in _BOOLS and not isinstance(value, bool):
            raise InvalidInput(f"{key} must be true or false")
    if payload.get("logprobs") is not None and not isinstance(payload["logprobs"], (bool, int)):
        raise InvalidInput("logprobs must be a boolean or an integer")
    stop = payload.get("stop")
    stops = [stop] if stop is None or isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(s is None or isinstance(s, str) for s in stops):
        raise InvalidInput("stop must be a string or a list of strings")
    for key, ok in (
        ("stop_token_ids", lambda v: isinstance(v, list) and all(type(x) is int for x in v)),
        ("logit_bias", lambda v: isinstance(v, dict) and all(type(x) in (int, float) for x in v.values())),
        ("stream_options", lambda v: isinstance(v, dict) and all(type(v[k]) is bool for k in v)),
        ("user", lambda v: isinstance(v, str)),
        ("reasoning_effort", lambda v: isinstance(v, str) and len(v) <= 16),
    ):
        if payload.get(key) is not None and not ok(payload[key]):
            raise InvalidInput(f"{key} has an unexpected form")
    _strings(payload, "request")  # every string valid Unicode, nesting bounded


def prompt_texts(
    payload: dict[str, Any],
    kind: str,
    *,
    allow_system: bool = False,
    known_answer: Callable[[str], bool] | None = None,
    extra_fields: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """``(channel, text)`` for every client-supplied text the model reads; refuses (``InvalidInput``) a field
    the guard does not understand and (``AccessDenied``) a system/developer message unless ``allow_system``
    (then its text comes back with the channel :data:`TRUSTED`: the operator's instructions, not scanned).
    An assistant turn whose content ``known_answer`` recognises (an answer the proxy itself returned) is not
    scanned again; its tool calls still are. ``extra_fields`` (the operator's ``extra_fields``: vendor
    parameters such as vLLM's ``guided_json``) are forwarded with every string in them scanned."""
    extra_fields = extra_fields - _NUMBERS - _INTS - _BOOLS - _OTHER  # a known field keeps its own checks
    _check_fields(payload, kind, extra_fields)
    out: list[tuple[str, str]] = [
        ("tool", "\n".join(_schema_texts(payload[k]))) for k in sorted(extra_fields & set(payload))
    ]
    if kind == "text":
        prompt = payload.get("prompt", "")
        items = prompt if isinstance(prompt, list) else [prompt]
        if not items or not all(isinstance(p, str) for p in items):
            raise InvalidInput("prompt must be a string or a list of strings (token ids cannot be inspected)")
        out += [("user", _text(p, "prompt")) for p in items]
        if payload.get("suffix") is not None:
            out.append(("user", _text(payload["suffix"], "suffix")))
        return out
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list")
    for i, m in enumerate(messages):
        out.extend(_message(m, i, allow_system=allow_system, known=known_answer))
    for name in ("tools", "functions"):
        spec = payload.get(name) or []
        if not isinstance(spec, list) or not all(isinstance(f, dict) for f in spec):
            raise InvalidInput(f"{name} must be a list of function definitions")
        out.extend(("tool", "\n".join(_schema_texts(f))) for f in spec)
    for key in ("tool_choice", "function_call", "response_format"):
        if payload.get(key) is not None:
            out.append(("tool", "\n".join(_schema_texts(payload[key]))))
    return out


def estimate_tokens(text: str) -> int:
    """A prompt's tokens: characters / 4, plus about one per non-ASCII character (CJK is ~1 a character)."""
    extra = len(text.encode("utf-8", "replace")) - len(text)
    return math.ceil(len(text) / 4) + math.ceil(extra / 2)


def chunk_text(chunk: dict[str, Any], kind: str) -> str:
    parts = []
    for choice in chunk.get("choices", []):
        text = choice.get("delta", {}).get("content") if kind == "chat" else choice.get("text")
        if isinstance(text, str):
            parts.append(text)
    return "".join(parts)


def finish_reason(chunk: dict[str, Any]) -> str | None:
    for choice in chunk.get("choices", []):
        if choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


def with_text(chunk: dict[str, Any], kind: str, text: str, finish: str | None) -> dict[str, Any]:
    out: dict[str, Any] = (
        dict(chunk) if chunk else {"object": "chat.completion.chunk" if kind == "chat" else "text_completion"}
    )
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish or finish_reason(chunk)}
    if kind == "chat":
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    out["choices"] = [choice]
    return out


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n"


__all__ = ["TRUSTED", "chunk_text", "estimate_tokens", "finish_reason", "prompt_texts", "sse", "with_text"]
