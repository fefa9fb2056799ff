"""Issue 17 attack17e A2-A5: an automatic network block must be spanned by the finding's named events.

A spray finding whose target had been widened to a /24 or /16 by records it does not name (a remote row,
one token from another /24) was acted on automatically: the evidence check saw only the named events. The
responder now sends a network target to approval unless its named, verified events lie inside it and come
from two or more of its parts (addresses of a /24; /24s of a /16).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.respond.pending import PendingQueue
from bastion.respond.state import STATE_DIR
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

SPRAYERS = ("203.0.113.50", "203.0.7.9")


def _findings(vault: Vault, tmp_path: Path) -> tuple[EventStore, dict]:
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time() - 120
    for n, client in enumerate(SPRAYERS):
        for i in range(25):
            writer.record(
                RequestRecord(
                    "-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + 30 * n + i, client
                )
            )
    writer.close()
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    found = {f.client: f for f in hunt(store=store, anomaly=False).findings if f.client in SPRAYERS}
    assert set(found) == set(SPRAYERS)
    return store, found


def _status(vault: Vault, store: EventStore, finding) -> str:
    responder = Responder(
        vault=vault,
        playbook=load_playbook(),
        mode="auto",
        pending=PendingQueue(vault.settings.home / STATE_DIR),
    )
    return {(r.action, r.target): r.status for r in responder.respond([finding], events=store)}[
        ("block-client", finding.client)
    ]


def test_a_network_target_wider_than_the_named_events_waits_for_approval(
    vault: Vault, tmp_path: Path
) -> None:
    store, found = _findings(vault, tmp_path)
    one = found["203.0.113.50"]
    assert _status(vault, store, replace(one, client="203.0.113.0/24", key="k24")) == "pending"
    assert _status(vault, store, replace(one, client="203.0.0.0/16", key="k16")) == "pending"
    both = replace(
        one,
        client="203.0.0.0/16",
        event_ids=one.event_ids + found["203.0.7.9"].event_ids,
        key="k16-both",
    )
    assert _status(vault, store, both) == "done"  # two /24s of it named: spanned
    assert _status(vault, store, one) == "done"  # one address: as before
    store.close()
