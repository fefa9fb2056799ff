"""attack17d A7: ``pending.json`` is sealed with the home's row sealer. A home writer without the passphrase
who queues a made-up proposal ("Extraction burst, 48,000 requests in 60 s") resting on one genuine benign
request of alice gets nothing: the entry is not listed, and approving it removes it and acts on nothing."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError
from bastion.events.collect import collect_audit
from bastion.events.store import EventStore
from bastion.hunt.report import Finding
from bastion.respond.pending import PendingQueue
from bastion.respond.playbook import load_playbook, parse_playbook
from bastion.respond.responder import Responder
from bastion.vault import init_project

RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000102"


def _forged(home: Path, now: float, eid: int) -> str:
    finding = {"rule_id": RULE, "title": "Extraction burst (48,000 requests in 60 s)",
               "techniques": ["AML.T0024.002"], "technique_names": ["Extract ML Model"], "severity": "high",
               "identity": "alice", "client": "-", "model": "m", "first_seen": now, "last_seen": now + 60,
               "event_ids": [eid], "count": 48000, "key": f"{RULE}|identity=alice|t={int(now)}",
               "score": None, "features": []}  # fmt: skip
    ident = hashlib.sha256(f"block-identity\0alice\0{finding['key']}".encode()).hexdigest()[:12]
    entry = {"id": ident, "action": "block-identity", "target": "alice", "env": "prod", "at": now}
    (home / "pending.json").write_text(json.dumps([{**entry, "finding": finding}]))
    return ident


def test_a_forged_proposal_is_neither_listed_nor_acted_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    v = init_project(home=home, passphrase="pending-seal", kdf=KdfParams.unsafe_fast(), inspectors=[])
    try:
        now = time.time()
        one = {"requests": [{"identity": "alice", "role": "reader", "model": "m", "version": "1",
                             "method": "POST", "path": "/v1/predict", "status": 200, "decision": "allow",
                             "latency_ms": 3.0, "ts": now, "client": "192.0.2.44"}]}  # fmt: skip
        v.audit.append(actor="gateway", action="serve:requests", target="m:1", outcome="ok", details=one)
        store = EventStore.for_home(home)
        collect_audit(v, store)
        eid = next(e.id for e in store.events() if e.identity == "alice")
        ident = _forged(home, now, eid)
        queue = PendingQueue(home)
        r = Responder(vault=v, playbook=load_playbook(), mode="auto", pending=queue)
        assert queue.list() == []
        with pytest.raises(IntegrityError, match="not sealed by this home"):
            r.settle_pending(ident, approve=True, events=store)
        assert json.loads((home / "pending.json").read_text()) == []  # removed
        assert "alice" not in r.state().blocked_identities
        # a proposal the responder queued itself is sealed: listed, and a changed byte breaks the seal
        book = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\nmode = "approve"\n')
        honest = Finding("r1", "t", (), "high", "-", "203.0.113.5", now, now, (), 1, "k1")
        q2 = PendingQueue(tmp_path / "q2")
        [res] = Responder(vault=v, playbook=book, mode="auto", pending=q2).respond([honest])
        assert res.status == "pending" and [i["target"] for i in q2.list()] == ["203.0.113.5"]
        items = json.loads(q2.path.read_text())
        items[0]["finding"]["count"] = 2
        q2.path.write_text(json.dumps(items))
        assert q2.list() == []
        store.close()
    finally:
        v.close()
