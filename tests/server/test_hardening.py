"""Issue 11's cold attack on ``bastion server``, replayed against a real server process over TLS: each
attack with the defence (and, where the attack can be run without it, the measurement that shows what it
did). F1 unauthenticated bodies, F5 audit-log flooding, F6 the introspection oracle, F8 spool paths."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import ssl
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests._support.archives import tar_bytes
from tests.server.conftest import PASSPHRASE, Server, launch, make_team, stop_server

from bastion.server.state import FailureLog, QuietFailures

pytestmark = pytest.mark.slow  # one server process


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from bastion.vault import open_vault

    root = tmp_path_factory.mktemp("hardening")
    home, tokens, tls = make_team(root)
    with open_vault(home=home, passphrase=PASSPHRASE) as owner:
        for name, role, models in [
            ("gw-m1", "gateway", ["m1"]),
            ("c-m1", "consumer", ["m1"]),
            ("c-m2", "consumer", ["m2"]),
        ]:
            tokens[name] = owner.create_token(name=name, role=role, models=models)[1]
    srv = launch(root, home, tokens, tls)
    try:
        yield srv
    finally:
        stop_server(srv.proc)


def _entries(srv: Server) -> int:
    with sqlite3.connect(srv.home / "bastion.db") as db:
        return int(db.execute("select count(*) from audit_entries").fetchone()[0])


def _raw_post(srv: Server, path: str, *, declared: int, send: int, token: str | None = None) -> bytes:
    """Headers declaring ``declared`` body bytes, then only ``send`` of them; whatever the server answers
    within 15 s (b"" when it is still waiting for the body)."""
    host, port = srv.url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    with (
        socket.create_connection((host, int(port)), timeout=15) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as s,
    ):
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-tar\r\n{auth}"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
            + b"\0" * send
        )
        try:
            return s.recv(4096)
        except TimeoutError:
            return b""


@pytest.mark.parametrize("path", ["/v1/data/reveal", "/v1/registry/push", "/v1/data/protect", "/v1/whoami"])
def test_anonymous_body_is_refused_before_a_byte_of_it_is_read(hard: Server, path: str) -> None:
    # F1: 1 GiB declared, 64 KiB sent: the 401 comes back at once; the server never waits for (or buffers)
    # the rest. Without the defence the x-tar content type skipped the cap and FastAPI read the whole body
    # before looking at the token (/tmp/attack11/bodylimit.py: 200 MiB -> +200 MiB peak RSS, then 401).
    answer = _raw_post(hard, path, declared=1 << 30, send=64 << 10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    bogus = "bst_" + "0" * 16 + "." + "A" * 43
    answer = _raw_post(hard, path, declared=1 << 30, send=64 << 10, token=bogus)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_json_paths_keep_their_cap_whatever_the_content_type(hard: Server) -> None:
    # F1: the exemption is by path only; an x-tar body to a JSON endpoint is capped like any other
    # (declared, and counted as received for a chunked body that declares nothing)
    auth = {"Authorization": f"Bearer {hard.tokens['alice-ds']}", "content-type": "application/x-tar"}
    declared = _raw_post(hard, "/v1/data/reveal", declared=17 << 20, send=0, token=hard.tokens["alice-ds"])
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]

    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b" " * (1 << 20)

    r = httpx.post(
        f"{hard.url}/v1/data/reveal", content=chunks(), headers=auth, verify=str(hard.ca), timeout=60
    )
    assert r.status_code in (400, 413) and "larger than" in r.json()["message"], r.text[:200]


def test_made_up_tokens_are_logged_in_aggregate(hard: Server) -> None:
    # F5: 40 made-up bst_ tokens in a second used to append 40 signed entries (/tmp/attack11/spray.py);
    # now the first failure of a source in a minute is logged at once and the rest as one counted entry
    before = _entries(hard)
    with httpx.Client(verify=str(hard.ca)) as c:
        for i in range(40):
            bad = f"bst_{i:016x}." + "B" * 43
            assert (
                c.get(f"{hard.url}/v1/whoami", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
            )
        ok = c.get(f"{hard.url}/v1/whoami", headers={"Authorization": f"Bearer {hard.tokens['alice-ds']}"})
        assert ok.status_code == 200  # a real token from the same address still works
    assert _entries(hard) - before <= 2


def _introspect(srv: Server, token: str, caller: str = "gw-m1") -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/gateway/introspect",
        json={"token": token},
        headers={"Authorization": f"Bearer {srv.tokens[caller]}"},
        verify=str(srv.ca),
        timeout=30,
    )


def test_introspect_answers_only_for_the_gateways_own_callers(hard: Server) -> None:
    # F6: a gateway credential asked who ANY token is (admin included) and failures left no trace
    ok = _introspect(hard, hard.tokens["c-m1"])
    assert ok.status_code == 200 and ok.json()["name"] == "c-m1"
    before = _entries(hard)
    # a deployer (model:infer on every model) is one of its callers too
    assert _introspect(hard, hard.tokens["dan-deployer"]).json()["name"] == "dan-deployer"
    names = ("ada-admin", "c-m2", "aud-auditor")  # an admin; another model's consumer; no model:infer
    refused = {name: _introspect(hard, hard.tokens[name]) for name in names}
    refused["made-up"] = _introspect(hard, "bst_" + "1" * 16 + "." + "C" * 43)
    bodies = {name: (r.status_code, r.json()) for name, r in refused.items()}
    assert {b[0] for b in bodies.values()} == {401}, bodies
    assert len({json.dumps(b[1], sort_keys=True) for b in bodies.values()}) == 1  # indistinguishable
    assert _entries(hard) == before  # counted, written in aggregate once the minute has passed
    # a guessing gateway is cut off (429) before any lookup once it has failed 30 times in a minute
    codes = [_introspect(hard, f"bst_{i:016x}." + "D" * 43).status_code for i in range(30)]
    assert codes[-1] == 429 and set(codes) <= {401, 429}
    assert _introspect(hard, hard.tokens["c-m1"]).status_code == 429
    # only gateway identities may ask at all
    assert _introspect(hard, hard.tokens["c-m1"], caller="alice-ds").status_code == 403


def _protect_body(opts: dict[str, Any], name: str, data: bytes) -> bytes:
    members = [("protect.json", json.dumps(opts).encode()), (f"files/{name}", data)]
    return tar_bytes(members, format=tarfile.PAX_FORMAT)


def test_protect_result_names_the_clients_file_not_the_spool(hard: Server) -> None:
    # F8: result.json carried the server's spool path (home, spool layout, process id)
    body = _protect_body(
        {"name": "people.csv", "out_name": "out.csv"},
        "people.csv",
        b"email,n\na@example.com,1\nb@example.com,2\n",
    )
    r = httpx.post(
        f"{hard.url}/v1/data/protect",
        content=body,
        headers={"Authorization": f"Bearer {hard.tokens['alice-ds']}", "content-type": "application/x-tar"},
        verify=str(hard.ca),
        timeout=60,
    )
    assert r.status_code == 200, r.text[:300]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r") as t:
        fh = t.extractfile("result.json")
        assert fh is not None
        text = fh.read().decode()
    assert str(hard.home) not in text and "server-spool" not in text
    assert json.loads(text)["output"] == "out.csv"


def _push_body(opts: dict[str, Any]) -> bytes:
    members = [("push.json", json.dumps(opts).encode()), ("files/config.json", b'{"a": 1}')]
    return tar_bytes(members, format=tarfile.PAX_FORMAT)


def test_tags_must_be_strings_and_notes_are_capped(hard: Server) -> None:
    # F7 / smaller findings: a tag value that is not a string was accepted (coerced with str()), and one
    # annotation could be as large as the JSON body cap (16 MiB), signed and stored per version
    auth = {"Authorization": f"Bearer {hard.tokens['alice-ds']}"}

    def push(tags: Any) -> httpx.Response:
        return httpx.post(
            f"{hard.url}/v1/registry/push",
            content=_push_body({"name": "tagged", "env": "dev", "tags": tags}),
            headers={**auth, "content-type": "application/x-tar"},
            verify=str(hard.ca),
            timeout=60,
        )

    for bad in ({"owner": {"nested": 1}}, {"owner": 5}, {"owner": None}):
        r = push(bad)
        assert r.status_code == 400 and "must be strings" in r.json()["message"], r.text[:200]
    ok = push({"owner": "alice"})
    assert ok.status_code == 200, ok.text[:300]
    ref = f"tagged:{ok.json()['version']}"

    def note(size: int) -> httpx.Response:
        body = {"ref": ref, "namespace": "notes", "data": {"text": "x" * size}}
        return httpx.post(f"{hard.url}/v1/registry/annotate", json=body, headers=auth, verify=str(hard.ca))

    assert note(1024).status_code == 200
    big = note(100 << 10)
    assert big.status_code == 400 and "larger than" in big.json()["message"]


def test_a_denial_does_not_reveal_the_versions_environment(hard: Server) -> None:
    # a deployer (prod only) asking for a version that sits in dev was told "... in dev"
    auth = {"Authorization": f"Bearer {hard.tokens['alice-ds']}", "content-type": "application/x-tar"}
    pushed = httpx.post(
        f"{hard.url}/v1/registry/push",
        content=_push_body({"name": "envleak", "env": "dev"}),
        headers=auth,
        verify=str(hard.ca),
        timeout=60,
    )
    assert pushed.status_code == 200, pushed.text[:300]
    dan = {"Authorization": f"Bearer {hard.tokens['dan-deployer']}"}
    for path in ("show", "pull"):
        r = httpx.get(
            f"{hard.url}/v1/registry/{path}", params={"ref": "envleak:1"}, headers=dan, verify=str(hard.ca)
        )
        assert r.status_code == 403, r.text[:200]
        assert "dev" not in r.json()["message"] and "envleak" in r.json()["message"]
    # a caller who may see the environment still gets the full reason (its own request's environment)
    eve = {"Authorization": f"Bearer {hard.tokens['eve-ds']}"}  # dev only: may read envleak in dev
    assert (
        httpx.get(
            f"{hard.url}/v1/registry/show", params={"ref": "envleak:1"}, headers=eve, verify=str(hard.ca)
        ).status_code
        == 200
    )


class _Log:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def append(self, **row: Any) -> None:
        self.rows.append(row)


def test_failure_log_windows_and_counts() -> None:
    clock = [0.0]
    log = _Log()
    failures = FailureLog(log, window_s=60, max_sources=2, now=lambda: clock[0])
    for _ in range(50):
        failures.failed("10.0.0.1")
    assert [r["details"]["count"] for r in log.rows] == [1]  # the first at once, the rest counted
    failures.failed("10.0.0.2")
    failures.failed("10.0.0.3")  # past max_sources: shares the source "*"
    assert [r["target"] for r in log.rows] == ["10.0.0.1", "10.0.0.2", "*"]
    clock[0] = 61.0
    failures.flush()
    assert log.rows[-1]["target"] == "10.0.0.1" and log.rows[-1]["details"]["count"] == 49
    assert log.rows[-1]["details"]["aggregated"] is True
    quiet = FailureLog(log, window_s=60, immediate=False, now=lambda: clock[0])
    n = len(log.rows)
    for _ in range(5):
        quiet.failed("gw")
    assert len(log.rows) == n
    quiet.flush(force=True)
    assert log.rows[-1]["details"]["count"] == 5
    # only a plain denial is held back by QuietFailures; a seal failure (with details) goes through
    q = QuietFailures(log)
    q.append(actor="unauthenticated", action="auth", target="x", outcome="denied")
    q.append(actor="unauthenticated", action="auth", target="x", outcome="denied", details={"reason": "seal"})
    assert log.rows[-1]["details"] == {"reason": "seal"} and len(log.rows) == n + 2
    time.sleep(0)
