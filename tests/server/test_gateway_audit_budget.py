"""attack17d A2 at ``POST /v1/gateway/audit``: a gateway names at most ``MAX_CLIENTS_PER_HOUR`` distinct
client addresses an hour; the records of further addresses are kept under client ``-`` (counts summed by
decision), so one entry naming 1,000 made-up addresses cannot make 1,000 findings."""

from __future__ import annotations

import time
from pathlib import Path

from bastion.crypto.kdf import KdfParams
from bastion.events.collect import collect_audit
from bastion.events.store import EventStore
from bastion.hunt import hunt, verifier_for
from bastion.server.routers.gateway_audit import ClientBudget, check_details, fold_clients
from bastion.vault import init_project


def _flood(n: int) -> dict:
    rows = [
        {"client": f"10.9.{i // 250}.{i % 250}", "decision": "deny:auth", "count": 20 + i % 3}
        for i in range(n)
    ]
    return {"requests": [], "unauthenticated": {"by_client": rows}}


def test_addresses_beyond_the_budget_are_folded() -> None:
    budget = ClientBudget(limit=10, window_s=3600.0)
    details = _flood(30)
    assert fold_clients(details, "gw-B", budget=budget, now=0.0) == 20
    check_details("serve:requests", details)  # still the strict shape
    rows = details["unauthenticated"]["by_client"]
    named = [r for r in rows if r["client"] != "-"]
    assert len(named) == 10 and all(r["count"] == 22 for r in named)  # the largest counts keep their names
    assert sum(r["count"] for r in rows) == sum(
        r["count"] for r in _flood(30)["unauthenticated"]["by_client"]
    )
    # the same addresses again are within the budget; new ones are not, until the hour has passed
    again = {"requests": [{"client": named[0]["client"]}, {"client": "192.0.2.1"}]}
    assert fold_clients(again, "gw-B", budget=budget, now=10.0) == 1
    assert [r["client"] for r in again["requests"]] == [named[0]["client"], "-"]
    assert fold_clients({"requests": [{"client": "192.0.2.1"}]}, "gw-B", budget=budget, now=4000.0) == 0
    assert fold_clients(_flood(5), "gw-A", budget=budget, now=10.0) == 0  # per gateway


def test_a_flood_makes_at_most_the_budget_in_findings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    v = init_project(home=home, passphrase="budget", kdf=KdfParams.unsafe_fast(), inspectors=[])
    store = EventStore.for_home(home)
    try:
        details = _flood(300)
        fold_clients(details, "gw-B", budget=ClientBudget(limit=10), now=time.time())
        v.audit.append(actor="gw-B", action="serve:requests", target="b:1", outcome="ok", details=details)
        collect_audit(v, store)
        rep = hunt(store=store, since=time.time() - 3600, anomaly=False, verify=verifier_for(v, store))
        named = {f.client for f in rep.findings if f.client not in ("-", "")}
        single = {c for c in named if "/" not in c}  # besides: the spray's /24, one finding for all of it
        assert 0 < len(single) <= 10 and len(named) <= 12
    finally:
        store.close()
        v.close()
