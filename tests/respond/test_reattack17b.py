"""Issue 17 re-attack (attack17b): the responder's decisions under an insider who writes the home
(events.db, bastion.db, respond/*) without the key ring, and an outsider spraying tokens.

Each test runs the attack against the real parts (gateway audit writer, audit log, collector, hunt, default
playbook, responder) and shows what the old behaviour did and that the defence refuses it.
"""

from __future__ import annotations

import time
from pathlib import Path

from bastion.events import EventStore, collect_audit
from bastion.events.verify import EvidenceVerifier
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


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
