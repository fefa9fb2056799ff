"""OpenAI wire format for the guarded proxy: the texts to scan in a request, and SSE chunks in and out."""

from __future__ import annotations

import json
from typing import Any

from bastion.errors import InvalidInput


def prompt_texts(payload: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    if kind == "text":
        prompt = payload.get("prompt", "")
        items = prompt if isinstance(prompt, list) else [prompt]
        if not all(isinstance(p, str) for p in items):
            raise InvalidInput("prompt must be a string or a list of strings")
        return [("user", p) for p in items]
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list")
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise InvalidInput("each message must be an object")
        role = m.get("role")
        content = m.get("content", "")
        if isinstance(content, list):  # content parts
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise InvalidInput("message content must be text")
        if role in ("system", "developer", "assistant"):
            continue  # the application's own text and earlier answers are not attacker input here
        out.append(("tool" if role in ("tool", "function") else "user", content))
    return out


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


__all__ = ["chunk_text", "finish_reason", "prompt_texts", "sse", "with_text"]
