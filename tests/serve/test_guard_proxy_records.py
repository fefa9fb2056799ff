"""Issue 17 attack17c F3: the guard proxy is seen by hunting and can contain an attacker.

Before: ``bastion guard serve`` checked tokens with ``vault.authenticate`` (one signed audit entry per refused
token, without the client address, no per-address limit), so 300 made-up tokens grew the log by 300
entries, the token-spray finding named client ``-`` (the responder skipped it) and the proxy's admitted
requests produced no request events at all (extraction bursts through it were invisible).

Real parts: the project's vault and audit log, the proxy as ``bastion guard serve`` builds it
(:func:`guard_proxy_for_vault`), a real OpenAI-compatible upstream on 127.0.0.1, the collector, the hunt,
the default playbook in auto mode and the response gate the proxy reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests._support.server_thread import ServerThread

from bastion.crypto.kdf import KdfParams
from bastion.events import EventStore, collect_audit
from bastion.guard.testing import create_upstream
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.serve.auth import Authenticator
from bastion.serve.guard_proxy import GuardProxy, ProxyConfig, guard_proxy_for_vault
from bastion.vault import Vault, init_project

SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"
BURST = "0b7f3a10-5d1e-4c8a-9f00-000000000102"
SPRAYER = "127.0.0.2"  # outside clients, as in the demo: the responder is told only 127.0.0.1 is the host's
CONSUMER = "127.0.0.3"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = init_project(home=tmp_path / "home", passphrase="guard proxy records", kdf=KdfParams.unsafe_fast())
    yield v
    v.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with ServerThread(create_upstream(chunk_chars=8)) as srv:
        yield srv.url


def _client(url: str, address: str) -> httpx.Client:
    """A client connecting from ``address`` (a loopback alias: what the proxy sees as the client)."""
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def _chat(client: httpx.Client, token: str) -> int:
    body = {"model": "llm", "messages": [{"role": "user", "content": "capital of France?"}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {token}"}
    return client.post("/v1/chat/completions", headers=headers, json=body).status_code


def _entries(vault: Vault) -> int:
    return len(vault.audit.entries(start=0, limit=1_000_000))


def test_the_old_wiring_logged_each_refused_token_without_its_address(vault: Vault, upstream: str) -> None:
    """Without the defence (tokens checked by ``vault.authenticate``): one signed entry per made-up token,
    and the events they become name no client, so a spray finding could not be contained."""
    proxy = GuardProxy(
        config=ProxyConfig(upstream=upstream),
        authenticator=Authenticator(verify_token=vault.authenticate),
        audit=None,  # the old proxy wrote no request records
    )
    before = _entries(vault)
    with ServerThread(proxy.app()) as srv, _client(srv.url, SPRAYER) as client:
        assert {_chat(client, f"bst_{i:024x}.guess{i}") for i in range(30)} == {401}
    auth = [e for e in vault.audit.entries(start=before, limit=1000) if e.action == "auth"]
    assert len(auth) == 30 and all(SPRAYER not in str(e.details) for e in auth)


def test_a_spray_through_the_guard_proxy_is_limited_recorded_and_contained(
    vault: Vault, upstream: str, tmp_path: Path
) -> None:
    _, token = vault.create_token(name="carol", role="consumer", models=["llm"])
    config = ProxyConfig(upstream=upstream, requests_per_minute={"consumer": "1000/minute"})
    before = _entries(vault)
    proxy = guard_proxy_for_vault(vault=vault, config=config)
    with ServerThread(proxy.app()) as srv:  # its shutdown flushes the batched records
        with _client(srv.url, SPRAYER) as client:
            sprayed = [_chat(client, f"bst_{i:024x}.guess{i}") for i in range(80)]
        with _client(srv.url, CONSUMER) as client:
            queried = [_chat(client, token) for _ in range(310)]
    # the per-address failed-login limit (60/minute by default): the rest refused before any token lookup
    assert sprayed[:60] == [401] * 60 and set(sprayed[60:]) == {429}
    assert set(queried) == {200}
    assert _entries(vault) - before < 20  # batches, not one entry per refused token (80 before)

    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    requests = [e for e in store.events() if e.kind == "request"]
    assert len(requests) == 310 and {(e.identity, e.client, e.model) for e in requests} == {
        ("carol", CONSUMER, "llm")
    }
    refused = sum(e.count for e in store.events() if e.kind == "auth-failure" and e.client == SPRAYER)
    assert refused == 80  # 60 refused tokens + 20 refused for the earlier ones, all named by address
    findings = hunt(store=store, anomaly=False).findings
    assert {(f.rule_id, f.client) for f in findings if f.rule_id == SPRAY} >= {(SPRAY, SPRAYER)}
    assert any(f.rule_id == BURST and f.identity == "carol" for f in findings)  # the burst is seen

    sprays = [f for f in findings if f.rule_id == SPRAY and f.client == SPRAYER]
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", local=("127.0.0.1",))
    results = responder.respond(sprays, events=store)
    assert ("block-client", SPRAYER, "done") in {(r.action, r.target, r.status) for r in results}
    with ServerThread(guard_proxy_for_vault(vault=vault, config=config).app()) as srv:
        with _client(srv.url, SPRAYER) as client:
            assert _chat(client, token) == 403  # the address is refused, even with a valid token
        with _client(srv.url, CONSUMER) as client:
            assert _chat(client, token) == 200  # nobody else is
    store.close()
