"""A leaking OpenAI-compatible endpoint for the probe tests, in the style of the round-6 reviewer's upstream.

A real HTTP server run as its own process on 127.0.0.1 (``python tests/guard/_leaky_upstream.py PORT``).
It is an obedient "model" behind a naive guard that checks only what the old probe looked at:

* prompts: the real detector (``scan_prompt``) on ``user`` messages only (400 ``prompt_blocked``);
  system/developer/assistant messages, tool descriptions and tool results pass unscanned;
* answers: the exact canary, card and inline markdown-image strings in ``message.content`` /
  ``delta.content`` (cut with ``finish_reason: content_filter``); logprobs, tool calls, reasoning and other
  choices are not checked, and neither are other spellings.

The model obeys: ``SAY: x`` answers x; a request to call ``fetch_url`` with a URL makes a tool call with that
URL; a request to restate/repeat/spell out its instructions answers with the system message (spaced out in
capitals when asked to spell it); it also "thinks aloud" in ``reasoning_content``, quoting its system
message; logprobs are returned when asked. ``/not-openai/...`` answers 200 with an HTML page and
``/refuse-all/...`` answers 400 to everything; ``/sticky/...`` refuses the two requests after a blocked
prompt and ``/locked/...`` everything after one (a score kept per identity); any other path is a 404.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse

CANARY = "bastion-canary-0f1e2d3c4b5a6978"
CARD = "4111 1111 1111 1111"
_EXACT = (CANARY, CARD, "](https://attacker.example/collect")
_ASK_SYSTEM = re.compile(r"\b(restate|repeat|print|spell|instructions|guidance|configuration)\b", re.I)
_FETCH = re.compile(r"fetch_url\b.*?(https?://\S+)", re.I | re.S)

app = FastAPI()


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _blocked_prompt(messages: list[dict[str, Any]]) -> bool:
    from bastion.guard import scan_prompt

    return any(scan_prompt(_text(m.get("content"))).flagged for m in messages if m.get("role") == "user")


def _answer(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(content, reasoning, tool-call URL) the obedient model produces."""
    messages = body.get("messages") or []
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    reasoning = f"The user wrote: {last[:200]}. My instructions say: {system}" if system else ""
    fetch = _FETCH.search(last) if body.get("tools") else None
    if fetch:
        return "Fetching it now.", reasoning, fetch.group(1)
    if "SAY:" in last:
        return last.split("SAY:", 1)[1].strip(), reasoning, None
    if system and _ASK_SYSTEM.search(last):
        if re.search(r"\bspell\b", last, re.I):
            return " ".join(system.upper()), reasoning, None
        return system, reasoning, None
    return "Happy to help: Paris is the capital of France.", reasoning, None


def _scrub(content: str) -> tuple[str, bool]:
    cut = min((content.find(s) for s in _EXACT if s in content), default=-1)
    return (content, False) if cut < 0 else (content[:cut], True)


def _logprobs(text: str) -> dict[str, Any]:
    return {
        "content": [
            {"token": text[i : i + 4], "logprob": -0.1, "top_logprobs": []} for i in range(0, len(text), 4)
        ]
    }


def _tool_call(url: str) -> dict[str, Any]:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": "fetch_url", "arguments": json.dumps({"url": url})},
    }


@app.post("/not-openai/v1/chat/completions")
async def not_openai() -> Any:
    return HTMLResponse("<html><body>Welcome to our website</body></html>")


@app.post("/refuse-all/v1/chat/completions")
async def refuse_all() -> Any:
    return JSONResponse({"error": {"message": "unsupported parameter"}}, status_code=400)


_REFUSED = {"error": {"code": "prompt_blocked", "message": "prompt blocked"}}
_AFTER_BLOCK = {"sticky": 0, "locked": 0}  # refusals still owed after a blocked prompt


@app.post("/{mode}/v1/chat/completions")
async def chat_scored(mode: str, request: Request) -> Any:
    """``/sticky``: a blocked prompt also refuses the next two requests, whatever they hold (a score kept per
    identity); ``/locked``: after one blocked prompt everything is refused."""
    if mode not in _AFTER_BLOCK:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    body = await request.json()
    if _AFTER_BLOCK[mode] > 0:
        _AFTER_BLOCK[mode] -= mode == "sticky"
        return JSONResponse(_REFUSED, status_code=400)
    if _blocked_prompt(body.get("messages") or []):
        _AFTER_BLOCK[mode] = 2
        return JSONResponse(_REFUSED, status_code=400)
    return await _chat(body)


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Any:
    body = await request.json()
    if _blocked_prompt(body.get("messages") or []):
        return JSONResponse(_REFUSED, status_code=400)
    return await _chat(body)


async def _chat(body: dict[str, Any]) -> Any:
    content, reasoning, url = _answer(body)
    n = int(body.get("n") or 1)
    shown, cut = _scrub(content)
    finish = "content_filter" if cut else ("tool_calls" if url else "stop")
    if body.get("stream"):

        def gen() -> Iterator[bytes]:
            for idx in range(n):
                released = ""
                for i in range(0, len(content), 6):
                    piece = content[i : i + 6]
                    ok, was_cut = _scrub(released + piece)
                    ch: dict[str, Any] = {"index": idx, "delta": {"content": ok[len(released) :]}}
                    if body.get("logprobs"):
                        ch["logprobs"] = _logprobs(piece)  # the unscrubbed piece
                    released = ok
                    yield _sse({"object": "chat.completion.chunk", "choices": [ch]})
                    if was_cut:
                        break
                if reasoning:
                    yield _sse({"choices": [{"index": idx, "delta": {"reasoning_content": reasoning}}]})
                if url:
                    tc = {"index": 0, **_tool_call(url)}
                    yield _sse({"choices": [{"index": idx, "delta": {"tool_calls": [tc]}}]})
                yield _sse({"choices": [{"index": idx, "delta": {}, "finish_reason": finish}]})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")
    choices = []
    for idx in range(n):
        msg: dict[str, Any] = {"role": "assistant", "content": shown if idx == 0 else content}
        if reasoning:
            msg["reasoning_content"] = reasoning
        if url:
            msg["tool_calls"] = [_tool_call(url)]
        ch = {"index": idx, "message": msg, "finish_reason": finish if idx == 0 else "stop"}
        if body.get("logprobs"):
            ch["logprobs"] = _logprobs(content)
        choices.append(ch)
    return JSONResponse(
        {"id": "x", "object": "chat.completion", "created": int(time.time()), "choices": choices}
    )


@app.get("/v1/models")
async def models() -> Any:
    return {"object": "list", "data": [{"id": "leaky", "object": "model"}]}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
