"""Issue 17, third cold review (attack17c) F2 and F4: the responder's client blocks.

F4: a dual-stack listener (``bastion serve --host ::``) or a proxy reports an IPv4 client as
``::ffff:a.b.c.d``; the spray was grouped (and blocked) as the IPv4 network, but the gate compared
strings, so the very addresses that sprayed were still admitted. F2: a sprayer holding any valid
low-role token (or an insider with one forged events.db row) made its own address "shared", so the
automatic block waited for a person.

Each test runs the real parts (gateway audit writer, audit log, collector, hunt, default playbook,
responder, the gate the gateway consults) and shows what the old check decided and what the defence does.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.respond.gate import ResponseGate
from bastion.respond.pending import PendingQueue
from bastion.respond.state import STATE_DIR
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.store.response_state import ResponseState
from bastion.vault import Vault

SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


def _old_client_blocked(entries: Mapping[str, Mapping[str, Any]], client: str) -> bool:
    """The check before the fix: the exact key, or an address (as given) inside a network entry."""
    if client in entries:
        return True
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    nets = [ipaddress.ip_network(k, strict=False) for k in entries if "/" in k]
    return any(address.version == n.version and address in n for n in nets)


def _record(identity: str, client: str, ts: float, status: int = 200) -> RequestRecord:
    decision = "allow" if status < 400 else "deny:auth"
    role = "-" if identity == "-" else "consumer"
    return RequestRecord(identity, role, "m0", "1", "POST", "infer", status, decision, 1.0, ts, client)


def test_f4_an_ipv4_block_covers_the_same_clients_as_ipv4_mapped_ipv6(vault: Vault, tmp_path: Path) -> None:
    """A spray from 12 addresses of one /24, seen as ``::ffff:203.0.113.x`` (dual-stack listener): the
    responder blocks ``203.0.113.0/24`` and the gate refuses those addresses in either form."""
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    sprayers = [f"::ffff:203.0.113.{10 + a}" for a in range(12)]
    for client in sprayers:
        for i in range(10):  # under the per-address rule, over the per-/24 one
            writer.record(_record("-", client, now + i, 401))
    writer.close()
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    found = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY]
    assert [f.client for f in found] == ["203.0.113.0/24"]
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(found, events=store)
    assert [(r.action, r.target, r.status) for r in results] == [("block-client", "203.0.113.0/24", "done")]
    gate = ResponseGate.for_vault(vault, reload_s=0.0)
    assert gate is not None
    state = gate.state()
    assert state is not None
    # without the defence: the addresses that sprayed, as the listener reports them, were admitted
    assert not any(_old_client_blocked(state.blocked_clients, c) for c in sprayers)
    assert all(gate.refuses(client=c) for c in sprayers)  # with it: refused
    assert gate.refuses(client="203.0.113.200") and gate.refuses(client="::FFFF:cb00:7101")
    assert not gate.refuses(client="::ffff:203.0.114.1") and not gate.refuses(client="2001:db8::1")
    store.close()


def test_f4_mapped_entries_and_clients_fold_both_ways() -> None:
    state = ResponseState().with_entry("blocked_clients", "::ffff:198.51.100.7", {"finding": "k"})
    state = state.with_entry("blocked_clients", "::ffff:192.0.2.0/120", {"finding": "k"})
    state = state.with_entry("throttled_clients", "203.0.113.5", {"finding": "k"})
    for client, blocked in (
        ("198.51.100.7", True),  # an entry stored in the mapped form covers the IPv4 client
        ("::ffff:198.51.100.7", True),
        ("198.51.100.8", False),
        ("192.0.2.77", True),  # ::ffff:192.0.2.0/120 is 192.0.2.0/24
        ("::ffff:192.0.2.77", True),
        ("192.0.3.1", False),
        ("not-an-address", False),
        ("-", False),
    ):
        assert state.client_blocked(client) is blocked, client
    assert state.client_throttled("::ffff:203.0.113.5") and not state.client_throttled("::ffff:203.0.113.6")
    assert not _old_client_blocked(state.blocked_clients, "198.51.100.7")  # the old check missed both
    assert not _old_client_blocked(state.blocked_clients, "192.0.2.77")
    expired = ResponseState().with_entry("blocked_clients", "::ffff:198.51.100.7", {"until": 1.0})
    assert not expired.client_blocked("198.51.100.7")


def _old_shared(store: EventStore, client: str, finding: Any) -> bool:
    """The check before the fix: any stored row with an identity at the address (unverified, any identity)."""
    rows = store.query(
        f"SELECT 1 FROM {store.table} WHERE client = :c AND identity NOT IN ('-', '') "
        "AND ts >= :lo AND ts <= :hi LIMIT 1",
        {"c": client, "lo": finding.first_seen - 7 * 86400, "hi": finding.last_seen + 3600},
    )
    return bool(rows)


def _spray_from(vault: Vault, address: str, users: tuple[str, ...]) -> float:
    """``users`` send one authenticated request each from ``address``, then 25 made-up tokens from it."""
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    for k, user in enumerate(users):
        writer.record(_record(user, address, now - 5 + k))
    for i in range(25):
        writer.record(_record("-", address, now + i, 401))
    writer.close()
    return now


def _respond(vault: Vault, store: EventStore, address: str) -> tuple[list[tuple[str, str, str]], bool]:
    collect_audit(vault, store)
    found = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY]
    assert [f.client for f in found] == [address]
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=queue).respond(
        found, events=store
    )
    return [(r.action, r.target, r.status) for r in results], _old_shared(store, address, found[0])


def test_f2_a_sprayer_with_one_valid_token_is_still_blocked(vault: Vault, tmp_path: Path) -> None:
    """The sprayer holds one consumer token and sends one real request from the spraying address."""
    address = "203.0.113.9"
    _spray_from(vault, address, ("mallory-consumer",))
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    results, old = _respond(vault, store, address)
    assert old  # without the defence: the address counted as shared, the block waited for a person
    assert results == [("block-client", address, "done")]  # with it: blocked automatically
    store.close()


def test_f2_two_people_behind_the_address_still_hold_the_block(vault: Vault, tmp_path: Path) -> None:
    """The defence against lockouts stays: two identities' traffic (backed by the log) make it shared."""
    address = "10.20.0.1"
    _spray_from(vault, address, ("alice", "bob"))
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    results, _ = _respond(vault, store, address)
    assert results == [("block-client", address, "pending")]
    store.close()


def test_f2b_forged_events_db_rows_never_make_an_address_shared(vault: Vault, tmp_path: Path) -> None:
    """An insider who writes events.db (no key ring) adds authenticated rows at the sprayer's address: one
    without an audit entry (as in the review) and one claiming a real entry; neither counts."""
    address = "203.0.113.9"
    now = _spray_from(vault, address, ())
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    db = sqlite3.connect(tmp_path / "events.db")
    first = db.execute(f"SELECT MIN(audit_index) FROM {store.table}").fetchone()[0]  # a push, not the spray
    for identity, index in (("someone", None), ("someone-else", first)):
        db.execute(
            f"INSERT INTO {store.table} (ts, kind, identity, client, model, action, outcome, status, "
            "source, severity, attacks, hour, weekday, audit_index, details, count) "
            "VALUES (?, 'request', ?, ?, 'm0', 'infer', 'ok', 200, 'gateway', 'info', '', 0, 0, ?, '{}', 1)",
            (now - 3600, identity, address, index),
        )
    db.commit()
    db.close()
    found = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY]
    assert _old_shared(store, address, found[0])  # without the defence: shared, so only proposed
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(found, events=store)
    statuses = {(r.action, r.target): r.status for r in results}
    # with it: the forged rows do not count (the one claiming a real entry fails that entry's evidence)
    assert statuses == {("block-client", address): "done"}
    store.close()
