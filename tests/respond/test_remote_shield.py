"""Issue 17, fourth cold review (attack17d) A1: one remote gateway's record shielded a real home attack.

A remote gateway (any identity holding one released model) posted one refused-token record naming a sprayer
who was attacking the home gateway: the spray finding grouped by client named the remote row too, so the
responder asked for approval instead of blocking (A1); two made-up identities "authenticated" from the
sprayer's address in a remote record made the address shared, with the same effect (A1b). The rules now run
over the home's own events first (a group they fire on is acted on as the playbook says), and only the home's
events make an address shared; a finding that needs remote records to fire still waits for an operator.

The records are appended as ``POST /v1/gateway/audit`` appends them after its schema check.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt, verifier_for
from bastion.respond import Responder, load_playbook
from bastion.respond.pending import PendingQueue
from bastion.server.routers.gateway_audit import check_details
from bastion.vault import Vault

SPRAYER = "198.51.100.7"


def _batch(count: int) -> dict[str, Any]:
    return {
        "requests": [],
        "unauthenticated": {"by_client": [{"client": SPRAYER, "decision": "deny:auth"} | {"count": count}]},
    }


def _remote(vault: Vault, details: dict[str, Any]) -> None:
    check_details("serve:requests", details)  # what the router accepts from any gateway identity
    vault.audit.append(
        actor="gw-remote", action="serve:requests", target="other:1", outcome="ok", details=details
    )


def _spray_results(vault: Vault, tmp_path: Path) -> list[tuple[str, str, str, str]]:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    report = hunt(store=store, since=time.time() - 3600, anomaly=False, verify=verifier_for(vault, store))
    responder = Responder(
        vault=vault, playbook=load_playbook(), mode="auto", pending=PendingQueue(tmp_path / "q")
    )
    results = responder.respond(report.findings, events=store)
    store.close()
    return [(r.action, r.target, r.status, r.finding_key) for r in results if r.target == SPRAYER]


def test_a1_a_remote_record_does_not_turn_a_home_spray_into_a_proposal(vault: Vault, tmp_path: Path) -> None:
    now = time.time()
    sample = [{"client": SPRAYER, "decision": "deny:auth", "status": 401, "ts": now - 10}]
    _remote(vault, {"requests": [], "unauthenticated": {"sample": sample} | _batch(1)["unauthenticated"]})
    vault.audit.append(
        actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=_batch(50)
    )
    results = _spray_results(vault, tmp_path)
    assert results and {r[2] for r in results} == {"done"}  # blocked at once, as without the remote record


def test_a1_a_finding_that_needs_remote_records_waits_for_an_operator(vault: Vault, tmp_path: Path) -> None:
    vault.audit.append(
        actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=_batch(5)
    )
    _remote(vault, _batch(40))  # the home's 5 alone fire nothing; with the remote gateway's 40 the rule fires
    results = _spray_results(vault, tmp_path)
    assert results and {r[2] for r in results} == {"pending"}


def test_a1b_remote_identities_do_not_make_the_address_shared(vault: Vault, tmp_path: Path) -> None:
    now = time.time()
    records = [
        {
            "identity": name,
            "role": "reader",
            "model": "x",
            "version": "1",
            "method": "POST",
            "path": "/v1/predict",
        }
        | {"status": 200, "decision": "allow", "latency_ms": 1.0, "ts": now - 1800, "client": SPRAYER}
        for name in ("x1", "x2")
    ]
    _remote(vault, {"requests": records})
    vault.audit.append(
        actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=_batch(50)
    )
    results = _spray_results(vault, tmp_path)
    assert results and {r[2] for r in results} == {"done"}
