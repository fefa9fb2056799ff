"""Issue 17, third cold review (attack17c) F5: one malformed gateway record stopped hunting for good.

A ``serve:requests`` entry whose record had a ``ts`` or ``status`` that is not a number, a by-client count of
10^30, or a record that is not an object made the collector raise on it at every run: ``bastion hunt``,
``bastion respond`` and ``respond --watch`` never got past it, so nothing logged afterwards (a real monitor
flag) was hunted or acted on. Now each bad record is one ``invalid-record`` event, the rest of the log is
collected, the flag after it is found, verified and acted on; and ``POST /v1/gateway/audit`` refuses such
details before anything is logged (``tests/server/test_gateway_audit_schema.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bastion.events import EventStore, collect_audit, events_from_entry
from bastion.events.collect import MAX_COUNT
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.store.auditlog import AuditEntry
from bastion.vault import Vault

GOOD = {"identity": "app", "client": "192.0.2.9", "status": 200, "decision": "allow", "ts": 0.0}
POISON: dict[str, Any] = {
    "ts": {"requests": [{**GOOD, "ts": "not-a-number"}, GOOD]},
    "status": {"requests": [{**GOOD, "status": "abc"}, GOOD]},
    "nan-ts": {"requests": [{**GOOD, "ts": "nan"}, GOOD]},
    "huge-ts": {"requests": [{**GOOD, "ts": 1e300}, GOOD]},
    "huge-status": {"requests": [{**GOOD, "status": 10**12}, GOOD]},
    "notdict": {"requests": ["just a string", GOOD]},
    "requests-not-list": {"requests": {"a": 1}},
    "count": {
        "requests": [GOOD],
        "unauthenticated": {"by_client": [{"client": "192.0.2.1", "decision": "deny:auth", "count": 10**30}]},
    },
    "by-client-not-dict": {"requests": [GOOD], "unauthenticated": {"by_client": ["x"]}},
    "details-not-dict": ["a", "list"],
}


def _entry(details: Any, index: int = 3) -> AuditEntry:
    return AuditEntry(
        index=index,
        actor="gateway",
        action="serve:requests",
        target="m0:1",
        outcome="ok",
        timestamp="2026-12-01T10:00:00+00:00",
        details=details,
    )


@pytest.mark.parametrize("variant", sorted(POISON))
def test_a_malformed_record_becomes_one_invalid_record_event(variant: str) -> None:
    details = POISON[variant]
    if variant == "ts":  # the conversion the collector used to make raised on it
        with pytest.raises(ValueError):
            float(details["requests"][0]["ts"])
    events = events_from_entry(_entry(details))
    invalid = [e for e in events if e.kind == "invalid-record"]
    if variant == "count":  # capped, not refused: the flood still counts (at most MAX_COUNT in one row)
        assert not invalid
        assert [e.count for e in events if e.kind == "auth-failure"] == [MAX_COUNT]
        return
    assert len(invalid) == 1 and invalid[0].severity == "medium" and invalid[0].details["error"]
    assert invalid[0].audit_index == 3 and invalid[0].model == "m0"
    if variant not in ("requests-not-list", "details-not-dict"):  # the good record beside it still counts
        assert [e.identity for e in events if e.kind == "request"] == ["app"]
    assert events_from_entry(_entry(details)) == events  # deterministic: the evidence check re-derives it


@pytest.mark.parametrize("variant", ["ts", "status", "count", "notdict"])
def test_hunting_and_response_go_on_after_a_poisoned_entry(
    vault: Vault, tmp_path: Path, variant: str
) -> None:
    """The review's script, on the real log: the poison entry, then a genuine extraction flag for alice."""
    vault.audit.append(
        actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=POISON[variant]
    )
    vault.create_token(name="alice", role="consumer", models=["m0"])
    vault.audit.append(
        actor="gateway",
        action="serve:monitor-flag",
        target="m0:1",
        outcome="ok",
        details={"identity": "alice", "client": "198.51.100.9"},
    )
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    assert collect_audit(vault, store) == len(vault.log_entries())  # used to raise here, every run
    flags = [f for f in hunt(store=store, anomaly=False, since=time.time() - 3600).findings]
    flag = next(f for f in flags if f.identity == "alice")
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond([flag], events=store)
    done = {(r.action, r.target) for r in results if r.status == "done"}
    assert ("block-identity", "alice") in done and ("revoke-tokens", "alice") in done
    assert not [t for t in vault.access.list_tokens() if t.identity == "alice" and not t.revoked]
    store.close()
