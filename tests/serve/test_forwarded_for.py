"""X-Forwarded-For never names the client (attack17d A4): ``bastion guard serve``, ``bastion server``,
``bastion witness serve`` and ``bastion ui`` run uvicorn with its proxy-header handling off, so a loopback
caller cannot pick the address its refused tokens are counted under (and blocked by); a recorded client is
one IP address or ``-``, never a network a block could cover."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.serve.connections import client_host
from bastion.vault import init_project

PASS = "forwarded-for-test"


def _peer_seen(options: dict[str, Any]) -> Any:
    """The client address an app sees behind uvicorn configured with ``options``, for a loopback
    connection that sends ``X-Forwarded-For: 203.0.113.20``."""
    seen: list[Any] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("client"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    keep = {k: v for k, v in options.items() if k in ("proxy_headers", "forwarded_allow_ips")}
    config = uvicorn.Config(probe, log_config=None, **keep)  # no dictConfig: see ServerThread
    config.load()
    scope = {
        "type": "http", "method": "GET", "path": "/", "headers": [(b"x-forwarded-for", b"203.0.113.20")],
        "client": ("127.0.0.1", 40000), "scheme": "http", "query_string": b"", "asgi": {"version": "3.0"},
    }  # fmt: skip

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    asyncio.run(config.loaded_app(scope, receive, send))
    return seen[0]


def test_uvicorn_defaults_trust_the_header_from_loopback() -> None:
    # the attack the options defend against: uvicorn's defaults take the header from 127.0.0.1
    assert _peer_seen({})[0] == "203.0.113.20"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    home = tmp_path / "home"
    init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_PASSPHRASE", PASS)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return home, calls


@pytest.mark.parametrize(
    "argv",
    [
        ["guard", "serve", "--upstream", "http://127.0.0.1:9", "--insecure", "--port", "1"],
        ["server", "--insecure", "--port", "1"],
    ],
)
def test_servers_ignore_the_header(captured: tuple[Path, list[dict[str, Any]]], argv: list[str]) -> None:
    home, calls = captured
    assert run([*argv, "--home", str(home)]) == 0
    assert calls and _peer_seen(calls[0])[0] == "127.0.0.1"


def test_witness_server_ignores_the_header(
    captured: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, calls = captured
    assert run(["log", "key", "--home", str(home)]) == 0
    (tmp_path / "log.pem").write_text(capsys.readouterr().out, encoding="ascii")
    wdir = str(tmp_path / "w")
    assert run(["witness", "init", "--dir", wdir, "--log-key", str(tmp_path / "log.pem")]) == 0
    assert run(["witness", "serve", "--dir", wdir, "--insecure", "--port", "1"]) == 0
    assert calls and _peer_seen(calls[0])[0] == "127.0.0.1"


def test_ui_server_ignores_the_header(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bastion.ui import UIOptions, server

    home = tmp_path / "home"
    init_project(home=home, passphrase=PASS, kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_PASSPHRASE", PASS)
    configs: list[Any] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: configs.append(self.config))
    server.run(UIOptions(home=str(home), insecure=True, port=0))
    assert configs and configs[0].proxy_headers is False


@pytest.mark.parametrize(
    ("peer", "recorded"),
    [
        (("203.0.113.20", 1), "203.0.113.20"),
        (("::FFFF:10.0.0.1", 1), "::ffff:a00:1"),
        (("10.20.0.0/16", 1), "-"),
        (("203.0.113.20, 10.0.0.1", 1), "-"),
        (("testclient", 1), "-"),
        (None, "-"),
        ("[2001:db8::1]", "2001:db8::1"),
    ],
)
def test_a_recorded_client_is_one_address(peer: Any, recorded: str) -> None:
    assert client_host(peer) == recorded
