"""Issue 17, third cold review (attack17c) F1: a remote gateway's word made the responder act everywhere.

The operator of a remote gateway released ONE model (``m0:1``) posted through ``POST /v1/gateway/audit`` a
``serve:monitor-flag`` naming an innocent identity (and another model), and a ``serve:requests`` batch
claiming 5,000 refused tokens from an admin's address. ``bastion respond --auto`` then blocked and revoked
the identity and blocked the address at the server: the records were in the signed log, so the evidence
check passed. Now the collector tags such events (``source`` ``remote-gateway``, ``details.gateway``),
binds them to the released model and the entry's time, and the responder never acts on them automatically:
every action waits for an operator (who can still approve it). The control writes the very same records as
the home gateway (actor ``gateway``): acted on automatically, as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests._support.pushed_vault import PASSPHRASE

from bastion.events import EventStore, collect_audit
from bastion.events.collect import REMOTE_SKEW_S, REMOTE_SOURCE
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.respond.pending import PendingQueue
from bastion.vault import Vault

ADMIN_IP = "192.0.2.50"
FLAG = {
    "action": "serve:monitor-flag",
    "target": "m0:1",
    "outcome": "ok",
    "details": {"identity": "alice", "client": "198.51.100.77", "model": "m3"},
}
SPRAY = {
    "action": "serve:requests",
    "target": "m0:1",
    "outcome": "denied",
    "details": {
        "requests": [],
        "unauthenticated": {"by_client": [{"client": ADMIN_IP, "decision": "deny:auth", "count": 5000}]},
    },
}


@pytest.fixture
def remote(vault: Vault) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The real server app over the vault's home, a gateway identity ``gw1`` released ``m0:1``."""
    from bastion.server.app import create_server_app

    vault.access.grant(name="gw1", role="gateway", models=["m0"], envs=["prod"])
    tokens = {
        "gw1": vault.create_token(name="gw1", role="gateway", models=["m0"], envs=["prod"])[1],
        "alice": vault.create_token(name="alice", role="consumer", models=["m3"])[1],
    }
    app = create_server_app(home=vault.settings.home, passphrase=PASSPHRASE)
    state = app.state.bastion
    state.mark_released(state.authenticate(f"Bearer {tokens['gw1']}", address="127.0.0.1"), "m0:1")
    try:
        yield TestClient(app), tokens
    finally:
        state.close()


def _post(client: TestClient, token: str, *entries: dict[str, Any]) -> Any:
    return client.post(
        "/v1/gateway/audit", json={"entries": list(entries)}, headers={"Authorization": f"Bearer {token}"}
    )


def _respond(vault: Vault, tmp_path: Path, store: EventStore) -> tuple[list[Any], Responder]:
    collect_audit(vault, store)
    found = hunt(store=store, anomaly=False, since=time.time() - 3600).findings
    pending = PendingQueue(tmp_path / "pending")
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=pending)
    return responder.respond(found, events=store), responder


def test_f1_a_remote_gateways_forged_records_wait_for_an_operator(
    vault: Vault, tmp_path: Path, remote: tuple[TestClient, dict[str, str]]
) -> None:
    client, tokens = remote
    assert _post(client, tokens["gw1"], FLAG, SPRAY).json() == {"written": 2}
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    results, responder = _respond(vault, tmp_path, store)
    acted = {(r.action, r.target): r.status for r in results}
    assert acted == {
        ("block-identity", "alice"): "pending",
        ("block-client", "198.51.100.77"): "pending",
        ("revoke-tokens", "alice"): "pending",
        ("block-client", ADMIN_IP): "pending",
    }
    state = responder.state()
    assert not state.blocked_identities and not state.blocked_clients
    assert [t for t in vault.access.list_tokens() if t.identity == "alice" and not t.revoked]
    # the events say whose word they are, and name the released model only (not the "m3" it claimed)
    remote_events = [e for e in store.events() if e.source == REMOTE_SOURCE]
    assert {(e.kind, e.model, e.details["gateway"]) for e in remote_events} == {
        ("monitor-flag", "m0", "gw1"),
        ("auth-failure", "m0", "gw1"),
    }
    # an operator who looked can still act on it
    ident = next(p["id"] for p in PendingQueue(tmp_path / "pending").list() if p["action"] == "revoke-tokens")
    assert responder.settle_pending(ident, approve=True, events=store).status == "done"
    assert not [t for t in vault.access.list_tokens() if t.identity == "alice" and not t.revoked]
    store.close()


def test_f1_control_the_same_records_from_the_home_gateway_are_acted_on(vault: Vault, tmp_path: Path) -> None:
    """Without the defence (the records taken as the home gateway's word) the responder acts at once."""
    vault.create_token(name="alice", role="consumer", models=["m3"])
    for entry in (FLAG, SPRAY):
        vault.audit.append(actor="gateway", **entry)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    results, responder = _respond(vault, tmp_path, store)
    acted = {(r.action, r.target): r.status for r in results}
    assert acted[("block-identity", "alice")] == "done" and acted[("revoke-tokens", "alice")] == "done"
    assert acted[("block-client", ADMIN_IP)] == "done"
    assert ADMIN_IP in responder.state().blocked_clients
    store.close()


def test_f1_remote_records_are_bound_to_the_entrys_time(
    vault: Vault, tmp_path: Path, remote: tuple[TestClient, dict[str, str]]
) -> None:
    client, tokens = remote
    record = {"identity": "alice", "client": "198.51.100.7", "status": 200, "decision": "allow"}
    batch = {
        "action": "serve:requests",
        "target": "m0:1",
        "outcome": "ok",
        "details": {"requests": [{**record, "ts": 1.0}, {**record, "ts": time.time() + 86400}]},
    }
    assert _post(client, tokens["gw1"], batch).status_code == 200
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    times = [e.time for e in store.events() if e.source == REMOTE_SOURCE]
    entry_time = max(e.time for e in store.events())
    assert len(times) == 2 and all(entry_time - REMOTE_SKEW_S - 5 <= t <= entry_time + 5 for t in times)
    store.close()


def test_f1_an_identity_named_gateway_writes_nothing(
    vault: Vault, remote: tuple[TestClient, dict[str, str]]
) -> None:
    """Its entries' actor would read as the home gateway's (trusted): refused."""
    client, _ = remote
    vault.access.grant(name="gateway", role="gateway", models=["m0"], envs=["prod"])
    token = vault.create_token(name="gateway", role="gateway", models=["m0"], envs=["prod"])[1]
    state = client.app.state.bastion  # type: ignore[attr-defined]
    state.mark_released(state.authenticate(f"Bearer {token}", address="127.0.0.1"), "m0:1")
    refused = _post(client, token, FLAG)
    assert refused.status_code == 403 and "named 'gateway'" in refused.json()["message"]


def test_f5_a_malformed_batch_is_refused_before_it_is_logged(
    vault: Vault, remote: tuple[TestClient, dict[str, str]]
) -> None:
    client, tokens = remote
    size = len(vault.log_entries())
    poison = {**SPRAY, "details": {"requests": [{"ts": "not-a-number", "status": 200}]}}
    refused = _post(client, tokens["gw1"], FLAG, poison)
    assert refused.status_code == 400 and "requests.0.ts" in refused.json()["message"]
    assert len(vault.log_entries()) == size  # nothing of the call written, not even the good entry
