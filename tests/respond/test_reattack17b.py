"""Issue 17 re-attack (attack17b): the responder's decisions under an insider who writes the home
(events.db, bastion.db, respond/*) without the key ring, and an outsider spraying tokens.

Each test runs the attack against the real parts (gateway audit writer, audit log, collector, hunt, default
playbook, responder) and shows what the old behaviour did and that the defence refuses it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from bastion.errors import IntegrityError
from bastion.events import EventStore, collect_audit
from bastion.events.verify import EvidenceVerifier
from bastion.hunt import hunt, load_rules
from bastion.hunt.report import Finding
from bastion.respond import Responder, load_playbook, watch
from bastion.respond import pending as pending_module
from bastion.respond.pending import PendingQueue
from bastion.respond.responder import PlannedAction
from bastion.respond.state import STATE_DIR
from bastion.respond.watch import Tick
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.store import merkle
from bastion.store.response_state import STATE_ACTION, LoggedState
from bastion.vault import Vault

SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"  # refused tokens per hour from one /24 (or one address)
SPRAY_ONE = SPRAY


def _spray(vault: Vault, prefix: str = "203.0.113.", n: int = 12, each: int = 10) -> None:
    """A distributed spray: ``n`` addresses of one /24, ``each`` made-up tokens each (under the per-address
    rule, over the per-/24 one)."""
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    for a in range(n):
        for i in range(each):
            writer.record(
                RequestRecord(
                    "-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + i, f"{prefix}{10 + a}"
                )
            )
    writer.close()


def test_f2_a_network_spray_finding_is_acted_on(vault: Vault, tmp_path: Path) -> None:
    _spray(vault)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    found = [f for f in hunt(store=store, anomaly=False).findings if f.client == "203.0.113.0/24"]
    assert found, "the per-/24 spray rule fires"
    finding = found[0]
    clients = {e.client for e in store.events(ids=list(finding.event_ids))}
    # the old check (the finding's client must equal an event's client) refused every network finding
    assert finding.client not in clients
    verifier = EvidenceVerifier(log=vault, store=store)
    assert verifier.check(finding.event_ids, client=finding.client) is None
    # a network that does not hold every event's client is still refused (v4 and v6, mapped or not)
    assert verifier.check(finding.event_ids, client="203.0.113.0/28") is not None
    assert verifier.check(finding.event_ids, client="198.51.100.0/24") is not None
    assert verifier.check(finding.event_ids, client="::ffff:203.0.113.0/120") is None
    assert verifier.check(finding.event_ids, client="2001:db8::/32") is not None
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(found, events=store)
    assert {(r.action, r.target, r.status) for r in results} >= {("block-client", "203.0.113.0/24", "done")}
    store.close()


def _one_address_spray(vault: Vault, tmp_path: Path) -> tuple[EventStore, Finding]:
    """25 made-up tokens from 192.0.2.10."""
    _spray(vault, prefix="192.0.2.", n=1, each=25)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    [finding] = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY_ONE]
    return store, finding


def _queue(vault: Vault, items: list[tuple[str, str, str, Finding]]) -> PendingQueue:
    """pending.json written by hand, sealed with the home's key: the checks behind the seal (an entry a home
    writer without the key adds is refused by the seal first: test_pending_sealed.py)."""
    sealer = vault.access.sealer
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    queue.path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"id{i}", "action": a, "target": t, "env": e, "at": 0.0, "finding": asdict(f)}
        for i, (a, t, e, f) in enumerate(items)
    ]
    rows = [{**r, "mac": sealer.seal(pending_module.SEAL_KIND, r["id"], r).hex()} for r in rows]
    queue.path.write_text(json.dumps(rows))
    return queue


def test_f5_a_forged_pending_entry_is_refused(vault: Vault, tmp_path: Path) -> None:
    _, bob = vault.create_token(name="bob", role="data-scientist")
    store, finding = _one_address_spray(vault, tmp_path)
    wide = replace(finding, client="192.0.0.0/8", key="k|wide")  # its events lie inside: evidence passes
    queue = _queue(
        vault,
        [
            ("disable-identity", "bob", "prod", finding),  # a target the finding does not name
            ("block-client", "0.0.0.0/0", "prod", finding),
            ("rotate-key", "dev", "dev", finding),  # an action the playbook does not take for it
            ("block-client", "192.0.0.0/8", "prod", wide),  # follows from its finding, but far too wide
            ("block-client", finding.client, "prod", finding),  # the genuine proposal
        ],
    )
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=queue)
    # without the check the entries' own action/target would be carried out (the evidence itself is real)
    assert EvidenceVerifier(log=vault, store=store).check(finding.event_ids, client=finding.client) is None
    assert EvidenceVerifier(log=vault, store=store).check(wide.event_ids, client=wide.client) is None
    status = {i: responder.settle_pending(f"id{i}", approve=True, events=store) for i in range(5)}
    assert [status[i].status for i in range(5)] == ["refused"] * 4 + ["done"], [
        s.detail for s in status.values()
    ]
    assert "wider than /16" in status[3].detail
    assert vault.authenticate(bob).name == "bob"  # bob untouched
    state = responder.state()
    assert set(state.blocked_clients) == {"192.0.2.10"} and not state.client_blocked("8.8.8.8")
    denied = [e for e in vault.log_entries(start=0, limit=10_000) if e.outcome == "denied"]
    assert len([e for e in denied if e.action.startswith("respond:")]) == 4
    store.close()


def test_f5_an_approved_block_of_a_local_address_is_refused(vault: Vault) -> None:
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", trusted=("10.0.0.5",))
    for client in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "10.0.0.5"):
        finding = Finding(SPRAY_ONE, "t", (), "high", "-", client, 1.0, 2.0, (1,), 25, f"k|{client}")
        planned = PlannedAction("block-client", client, finding)
        result, _ = responder._checked(planned, "auto", responder.state(), None, {}, approved=True)
        assert result.status == "refused", client
    assert responder.state().blocked_clients == {}


def test_f5_queue_evictions_are_logged(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pending_module, "MAX_PENDING", 2)
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    for i in range(3):
        f = Finding(SPRAY_ONE, "t", (), "high", "-", f"192.0.2.{i}", 1.0, 2.0, (1,), 25, f"k{i}")
        with caplog.at_level(logging.WARNING, logger="bastion.respond.pending"):
            queue.add(action="block-client", target=f.client, env="prod", finding=f, at=0.0)
    assert [i["target"] for i in queue.evicted] == ["192.0.2.0"]
    assert "192.0.2.0" in caplog.text and "dropped" in caplog.text
    assert [i["target"] for i in queue.list()] == ["192.0.2.1", "192.0.2.2"]


def _db(vault: Vault) -> Path:
    return Path(str(vault.engine.url.database))


def _edit_row(vault: Vault, index: int, edit: Callable[[bytes], bytes]) -> bytes:
    """What a home writer does with plain sqlite3 to bastion.db's audit log; returns the old bytes."""
    with sqlite3.connect(_db(vault)) as conn:
        (data,) = conn.execute("SELECT data FROM audit_entries WHERE idx = ?", (index,)).fetchone()
        conn.execute("UPDATE audit_entries SET data = ? WHERE idx = ?", (edit(bytes(data)), index))
    return bytes(data)


def _flip(data: bytes) -> bytes:
    return data.replace(b'"actor"', b'"actoR"', 1)


def test_f4_a_corrupted_log_halts_loudly_and_consumes_nothing(vault: Vault, tmp_path: Path) -> None:
    store, finding = _one_address_spray(vault, tmp_path)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")
    responder._save(responder.state())  # a state record after the row the attacker edits
    old = _edit_row(vault, 1, _flip)
    with pytest.raises(IntegrityError, match="halted"):
        responder.respond([finding], events=store)
    assert finding.key not in responder.state().handled  # before the fix: refused, and consumed for good
    assert any(e.action == "respond:halted" for e in vault.audit.entries(start=2, limit=100_000))
    ticks: list[Tick] = []
    watch(
        responder=responder,
        store=store,
        rules=load_rules(),
        interval_s=0.0,
        max_ticks=2,
        on_tick=ticks.append,
    )
    assert [bool(t.error) for t in ticks] == [True, True] and not any(t.results for t in ticks)
    _edit_row(vault, 1, lambda _: old)  # repaired: the finding is acted on
    results = responder.respond([finding], events=store)
    assert [(r.action, r.target, r.status) for r in results] == [("block-client", finding.client, "done")]
    store.close()


def test_f6_restore_state_refuses_an_edited_record(vault: Vault, tmp_path: Path) -> None:
    store, finding = _one_address_spray(vault, tmp_path)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")
    responder.respond([finding], events=store)
    responder.path.unlink()
    assert set(responder.restore_state().blocked_clients) == {finding.client}  # the genuine record
    rows = [e for e in vault.audit.entries(start=0, limit=100_000) if e.action == STATE_ACTION]
    index = int(rows[-1].index)

    def forge(data: bytes) -> bytes:
        entry = json.loads(data)
        entry["details"]["blocked_clients"] = {}
        entry["details"]["blocked_identities"] = {"alice": {"finding": "x"}}
        entry["details"]["guard_mode"] = "block"
        return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()

    _edit_row(vault, index, forge)
    responder.path.unlink()
    with pytest.raises(IntegrityError):
        responder.restore_state()
    assert not responder.path.exists()  # nothing signed
    # a thorough insider also rewrites the leaf hash and every later head's root and frontier (no key: the
    # heads' signatures stay stale); the unsigned check believes the forged record, restore_state does not
    _rehash(vault)
    forged = LoggedState(vault.engine).latest()
    assert forged is not None and forged["guard_mode"] == "block"
    with pytest.raises(IntegrityError, match="signature"):
        responder.restore_state()
    assert not responder.path.exists()
    store.close()


def _rehash(vault: Vault) -> None:
    with sqlite3.connect(_db(vault)) as conn:
        rows = conn.execute("SELECT idx, data FROM audit_entries ORDER BY idx").fetchall()
        leaves = [merkle.leaf_hash(bytes(data)) for _, data in rows]
        for (idx, _), leaf in zip(rows, leaves, strict=True):
            conn.execute("UPDATE audit_entries SET leaf_hash = ? WHERE idx = ?", (leaf, idx))
        for (size,) in conn.execute("SELECT size FROM tree_heads").fetchall():
            frontier: list[bytes] = []
            for i, leaf in enumerate(leaves[:size]):
                frontier = merkle.frontier_append(frontier, i, leaf)
            conn.execute(
                "UPDATE tree_heads SET root_hash = ?, frontier = ? WHERE size = ?",
                (merkle.root_of(leaves[:size]), merkle.pack(frontier), size),
            )


def test_f7_a_nat_idle_for_hours_or_seen_ipv4_mapped_is_still_shared(vault: Vault, tmp_path: Path) -> None:
    nat = "198.51.100.20"
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time()
    for i in range(
        10
    ):  # alice and bob worked through the NAT 5 hours ago (a dual-stack gateway: IPv4-mapped)
        writer.record(
            RequestRecord(
                "alice" if i % 2 else "bob",
                "admin",
                "m0",
                "1",
                "POST",
                "infer",
                200,
                "allow",
                3.0,
                now - 18000 + i,
                f"::ffff:{nat}",
            )
        )
    for i in range(25):  # now an insider behind it sprays made-up tokens
        writer.record(
            RequestRecord("-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now - 60 + i, nat)
        )
    writer.close()
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    [finding] = [f for f in hunt(store=store, anomaly=False, since=now - 86400).findings if f.client == nat]
    queue = PendingQueue(vault.settings.home / STATE_DIR)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto", pending=queue)
    results = responder.respond([finding], events=store)
    # before the fix (±1 h, outcome ok, plain address only) the NAT was blocked automatically
    assert [(r.action, r.target, r.status) for r in results] == [("block-client", nat, "pending")]
    verifier = EvidenceVerifier(log=vault, store=store)
    for local in ("127.0.0.2", "::1", "::ffff:127.0.0.1"):
        planned = PlannedAction("block-client", local, replace(finding, client=local))
        assert responder._shared(planned, verifier), local
    store.close()


def test_f10_one_state_save_per_respond_call(vault: Vault, tmp_path: Path) -> None:
    _spray(vault, prefix="203.0.113.", n=3, each=25)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    findings = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY]
    before = [e for e in vault.audit.entries(start=0, limit=100_000) if e.action == STATE_ACTION]
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings, events=store)
    assert [r.status for r in results] == ["done"] * 3
    after = [e for e in vault.audit.entries(start=0, limit=100_000) if e.action == STATE_ACTION]
    assert len(after) - len(before) == 1  # before the fix: one per action, then one more
    store.close()
