"""A small deterministic OpenAI-compatible server for tests, demos and benchmarks (``python -m``).

It is a real HTTP server (FastAPI on uvicorn) that "generates" text deterministically: the answer to a prompt
containing ``SAY:`` is the text after it (so a test can make the model leak a canary or a card number), any
other prompt gets a fixed sentence built from the prompt's words. Streaming answers are sent as SSE chunks of
``chunk_chars`` characters. No model weights are involved, so it runs anywhere offline.

    python -m bastion.guard.testing --port 8000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, StreamingResponse


def answer(prompt: str) -> str:
    if "SAY:" in prompt:
        return prompt.split("SAY:", 1)[1].strip()
    words = [w for w in prompt.split() if w.isalpha()][:8]
    return "Here is a short answer about " + (" ".join(words) or "your question") + ". I hope this helps."


def create_upstream(*, chunk_chars: int = 8) -> Any:

    app = FastAPI()

    def _chunks(text: str) -> Iterator[str]:
        for i in range(0, len(text), chunk_chars):
            yield text[i : i + chunk_chars]

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [{"id": "echo", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        prompt = "\n".join(
            str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"
        )
        text = answer(prompt.splitlines()[-1] if prompt else "")
        now = int(time.time())
        if body.get("stream"):

            def gen() -> Iterator[bytes]:
                for piece in _chunks(text):
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": now,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                end = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": now,
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                yield b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n"

            return StreamingResponse(gen(), media_type="text/event-stream")
        return JSONResponse({
            "id": "c1", "object": "chat.completion", "created": now, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],  # noqa: E501
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4},
        })  # fmt: skip

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        prompt = body.get("prompt", "")
        text = answer(prompt if isinstance(prompt, str) else " ".join(prompt))
        if body.get("stream"):

            def gen() -> Iterator[bytes]:
                for piece in _chunks(text):
                    chunk = {
                        "object": "text_completion",
                        "choices": [{"index": 0, "text": piece, "finish_reason": None}],
                    }
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(gen(), media_type="text/event-stream")
        return JSONResponse({"object": "text_completion", "model": body.get("model"),
                             "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})  # fmt: skip

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="deterministic OpenAI-compatible test upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--chunk-chars", type=int, default=8)
    args = parser.parse_args()
    uvicorn.run(
        create_upstream(chunk_chars=args.chunk_chars), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()


__all__ = ["answer", "create_upstream"]
