"""attack17d A2: a remote gateway floods the approval queue. One schema-valid ``serve:requests`` entry naming
many made-up addresses made one pending proposal each, and the full queue evicted the oldest: an honest
gateway's genuine proposal. Now each remote gateway holds at most ``MAX_PER_ORIGIN`` proposals (the rest
are not queued: one ``respond:pending-capped`` entry per call), and a full queue never evicts the home's
proposals for remote ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.events.collect import collect_audit
from bastion.events.store import EventStore
from bastion.hunt import hunt, verifier_for
from bastion.hunt.report import Finding
from bastion.respond import pending as pending_module
from bastion.respond.pending import PendingQueue
from bastion.respond.playbook import load_playbook
from bastion.respond.responder import Responder
from bastion.server.routers.gateway_audit import check_details
from bastion.vault import init_project

REAL = "198.51.100.7"


def test_a_flooding_gateway_does_not_evict_another_gateways_proposal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_module, "MAX_PENDING", 12)
    monkeypatch.setattr(pending_module, "MAX_PER_ORIGIN", 5)
    home = tmp_path / "home"
    v = init_project(home=home, passphrase="pending-flood", kdf=KdfParams.unsafe_fast(), inspectors=[])
    store = EventStore.for_home(home)
    queue = PendingQueue(home)
    r = Responder(vault=v, playbook=load_playbook(), mode="auto", pending=queue)
    now = time.time()

    def tick() -> list[str]:
        collect_audit(v, store)
        rep = hunt(store=store, since=now - 3600, anomaly=False, verify=verifier_for(v, store))
        return [x.status for x in r.respond(rep.findings, events=store)]

    try:
        real = {"requests": [], "unauthenticated": {"by_client": [{"client": REAL, "decision": "deny:auth",
                                                                   "count": 40}]}}  # fmt: skip
        check_details("serve:requests", real)
        v.audit.append(actor="gw-A", action="serve:requests", target="a:1", outcome="ok", details=real)
        assert tick() == ["pending"]
        rows = [{"client": f"10.9.{i}.9", "decision": "deny:auth", "count": 20} for i in range(30)]
        flood = {"requests": [], "unauthenticated": {"by_client": rows}}
        check_details("serve:requests", flood)  # the router accepts it from any attested gateway
        v.audit.append(actor="gw-B", action="serve:requests", target="b:1", outcome="ok", details=flood)
        statuses = tick()
        assert statuses.count("pending") == 5 and statuses.count("refused") == 25
        items = queue.list()
        assert REAL in [i["target"] for i in items]  # the honest gateway's proposal stays
        assert sum(1 for i in items if i["origin"] == "gw-B") == 5
        entries = list(v.log_entries(start=0))
        assert not [e for e in entries if e.action == "respond:pending-evicted"]
        [capped] = [e for e in entries if e.action == "respond:pending-capped"]
        assert capped.details["by_origin"] == {"gw-B": 25}
    finally:
        store.close()
        v.close()


def test_a_full_queue_evicts_remote_proposals_first_and_never_a_home_one_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_module, "MAX_PENDING", 3)
    queue = PendingQueue(tmp_path)

    def add(n: int, origin: str) -> str | None:
        f = Finding("r", "t", (), "high", "-", f"203.0.113.{n}", 0.0, 1.0, (), 1, f"k{n}")
        return queue.add(action="block-client", target=f.client, env="prod", finding=f, at=0.0, origin=origin)

    assert add(1, "gw") and add(2, "home") and add(3, "home")
    assert add(4, "home")  # full: the remote proposal goes first
    assert [i["target"] for i in queue.evicted] == ["203.0.113.1"]
    assert add(5, "gw") is None and queue.capped == {"gw": 1}  # full of the home's: not queued
    assert [i["origin"] for i in queue.list()] == ["home"] * 3
