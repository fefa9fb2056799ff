"""Issue 17 M4: made-up tokens from a shared address (an office NAT) must not lock out the people behind it.

Real parts: the gateway's BatchedAuditWriter, the audit log, the collector, the hunt, the default playbook in
auto mode and the ResponseGate the gateway consults. Without the defence (the responder not told where the
findings came from, as before) the spray blocks the address for good; with it the block waits for approval.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.respond.gate import ResponseGate
from bastion.respond.pending import PendingQueue
from bastion.respond.responder import CLIENT_BLOCK_S
from bastion.respond.state import STATE_DIR
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

NAT = "10.20.0.1"
OUTSIDE = "203.0.113.50"


def _traffic(vault: Vault) -> None:
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    for i in range(30):  # alice's and bob's real requests, through the office NAT
        user = "alice" if i % 2 else "bob"
        writer.record(
            RequestRecord(user, "admin", "m0", "1", "POST", "infer", 200, "allow", 3.0, now + i, NAT)
        )
    for client in (NAT, OUTSIDE):  # 25 made-up tokens from each address
        for i in range(25):
            writer.record(
                RequestRecord(
                    "-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + 30 + i, client
                )
            )
    writer.close()


def test_a_spray_from_a_shared_address_waits_for_approval(vault: Vault, tmp_path: Path) -> None:
    _traffic(vault)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    findings = [f for f in hunt(store=store, anomaly=False).findings if f.client in (NAT, OUTSIDE)]
    assert {f.client for f in findings} == {NAT, OUTSIDE}
    # without the defence: the NAT itself would be blocked automatically (what the plan says in auto mode)
    book = load_playbook()
    planned = Responder(vault=vault, playbook=book, mode="auto").plan(findings)
    assert ("block-client", NAT, "auto") in {(p.action, p.target, m) for p, m in planned}
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    responder = Responder(vault=vault, playbook=book, mode="auto", pending=queue)
    results = {(r.action, r.target): r.status for r in responder.respond(findings, events=store)}
    assert results[("block-client", NAT)] == "pending"  # their traffic came from it: a person decides
    assert results[("block-client", OUTSIDE)] == "done"  # no one else behind it: blocked, for an hour
    gate = ResponseGate.for_vault(vault, reload_s=0.0)
    assert gate is not None
    assert not gate.refuses(client=NAT, identity="alice") and gate.refuses(client=OUTSIDE)
    until = responder.state().blocked_clients[OUTSIDE]["until"]
    assert 0 < until - time.time() <= CLIENT_BLOCK_S
    assert not responder.state().client_blocked(OUTSIDE, now=until + 1)  # the block expires
    assert [i["target"] for i in queue.list()] == [NAT]
    store.close()


def test_loopback_and_trusted_proxies_are_never_blocked_automatically(vault: Vault) -> None:
    from bastion.hunt.report import Finding

    spray = "0b7f3a10-5d1e-4c8a-9f00-000000000302"  # the default playbook blocks a spraying client
    for address, trusted in (("127.0.0.1", ()), ("::1", ()), ("192.0.2.7", ("192.0.2.0/24",))):
        finding = Finding(spray, "t", (), "high", "-", address, 0.0, 1.0, (), 1, f"k|{address}")
        results = Responder(vault=vault, playbook=load_playbook(), mode="auto", trusted=trusted).respond(
            [finding]
        )
        assert [(r.action, r.status) for r in results] == [("block-client", "declined")]
    finding = Finding(spray, "t", (), "high", "-", "192.0.2.8", 0.0, 1.0, (), 1, "k|other")
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond([finding])
    assert [(r.action, r.status) for r in results] == [("block-client", "done")]


def test_respond_cli_never_auto_blocks_a_trusted_proxy(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    proxy = "192.0.2.7"
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 60
    for i in range(25):
        writer.record(
            RequestRecord("-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + i, proxy)
        )
    writer.close()
    with (vault.settings.home / "bastion.toml").open("a") as f:
        f.write('\n[serve.connections]\ntrusted_proxies = ["192.0.2.0/28"]\n')
    monkeypatch.setenv("BASTION_HOME", str(vault.settings.home))
    monkeypatch.setenv("BASTION_PASSPHRASE", "correct horse battery staple")
    assert run(["respond", "--auto"]) == 1  # left for an operator: pending
    out = capsys.readouterr().out
    assert f"pending  block-client      {proxy}" in out


def test_a_network_block_covers_its_addresses_and_nothing_else() -> None:
    """A spray grouped by /24 or /64 blocks that network: before, the state matched the client string only,
    so a ``198.51.100.0/24`` block refused nobody."""
    from bastion.store.response_state import ResponseState

    state = ResponseState().with_entry("blocked_clients", "198.51.100.0/24", {"finding": "k"})
    state = state.with_entry("blocked_clients", "2001:db8:1:2::/64", {"finding": "k"})
    state = state.with_entry("throttled_clients", "203.0.113.0/28", {"finding": "k"})
    assert state.client_blocked("198.51.100.77") and state.client_blocked("198.51.100.0/24")
    assert state.client_blocked("2001:db8:1:2::beef")
    assert not state.client_blocked("198.51.101.1") and not state.client_blocked("2001:db8:1:3::1")
    assert not state.client_blocked("-") and not state.client_blocked("not-an-address")
    assert state.client_throttled("203.0.113.9") and not state.client_throttled("203.0.113.16")
    expired = ResponseState().with_entry("blocked_clients", "198.51.100.0/24", {"until": 1.0})
    assert not expired.client_blocked("198.51.100.77")


def test_a_network_spray_with_authenticated_users_inside_waits_for_approval(
    vault: Vault, tmp_path: Path
) -> None:
    """A /24 finding where addresses inside carried alice's and bob's authenticated traffic is not blocked
    automatically (it would cut them off); a /24 with only refused tokens is."""
    from bastion.events.verify import EvidenceVerifier
    from bastion.hunt.report import Finding

    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    for i, (user, address) in enumerate([("alice", "10.9.8.7"), ("bob", "10.9.8.9")] * 3):
        writer.record(
            RequestRecord(user, "admin", "m0", "1", "POST", "infer", 200, "allow", 3.0, now + i, address)
        )
    writer.close()
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    spray = "0b7f3a10-5d1e-4c8a-9f00-000000000302"
    shared = Finding(spray, "t", (), "high", "-", "10.9.8.0/24", now, now + 60, (), 1, "k|net-shared")
    lone = Finding(spray, "t", (), "high", "-", "198.51.100.0/24", now, now + 60, (), 1, "k|net-lone")
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")
    verifier = EvidenceVerifier(log=vault, store=store)
    decided = {p.target: responder._shared(p, verifier) for p, _ in responder.plan([shared, lone])}
    assert decided == {"10.9.8.0/24": True, "198.51.100.0/24": False}
    store.close()
