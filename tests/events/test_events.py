"""Events from a real vault's audit log (registry, access, keys, gateway records) and their OCSF form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.errors import AuthenticationFailed
from bastion.events import AUDIT_CURSOR, Event, EventStore, collect_audit, events_from_entry
from bastion.store.auditlog import AuditEntry
from bastion.vault import Vault, open_vault

PASSPHRASE = "correct horse battery staple"


def test_collect_maps_audit_entries_and_resumes(vault: Vault, tmp_path: Path) -> None:
    _, token = vault.create_token(name="dave", role="data-scientist")
    with pytest.raises(AuthenticationFailed):
        vault.authenticate("bst_" + "x" * 40)
    vault.rotate_keys(env="dev")
    with open_vault(home=vault.settings.home, passphrase=PASSPHRASE, token=token) as dave:
        dave.pull("m1", out=tmp_path / "out")
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    read = collect_audit(vault, store)
    assert read == len(vault.log_entries()) and store.cursor(AUDIT_CURSOR) == read
    kinds = {e.kind for e in store.events()}
    assert {"push", "pull", "auth-failure", "key-op", "access-change"} <= kinds
    pull = next(e for e in store.events() if e.kind == "pull")
    assert (pull.identity, pull.model, pull.outcome) == ("dave", "m1", "ok")
    assert collect_audit(vault, store) == 0  # nothing new: the cursor moved with the events
    vault.list()
    assert collect_audit(vault, store) == 1


def test_gateway_batch_expands_to_request_events() -> None:
    entry = AuditEntry(
        index=7,
        actor="gateway",
        action="serve:requests",
        target="digits:3",
        outcome="denied",
        timestamp="2026-12-01T10:00:00+00:00",
        details={
            "requests": [
                {"identity": "app", "model": "digits", "status": 200, "decision": "allow", "ts": 1.0},
                {"identity": "app", "model": "digits", "status": 429, "decision": "deny:rate", "ts": 2.0},
                {
                    "identity": "app",
                    "model": "digits",
                    "status": 400,
                    "decision": "deny:output-policy",
                    "ts": 3,
                },
            ],
            "unauthenticated": {"count": 3, "by_decision": {"deny:auth": 3}, "sample": []},
        },
    )
    events = events_from_entry(entry)
    assert [e.kind for e in events] == ["request", "rate-limit", "guard-block", "auth-failure"]
    assert [e.count for e in events] == [1, 1, 1, 3]  # the refused tokens: one counted row (issue 17 M8)
    assert events[-1].attacks == ("AML.T0012",) and all(e.audit_index == 7 for e in events)


def test_ocsf_classes_and_round_trip(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(time=1.5, kind="auth-failure", client="10.0.0.1", outcome="denied"),
            Event(time=2.0, kind="pull", identity="dave", model="m1", attacks=("AML.T0035",)),
            Event(time=3.0, kind="theft-flag", identity="eve", details={"score": 0.9}),
        ]
    )
    auth, pull, flag = store.events()
    assert auth.to_ocsf()["class_uid"] == 3002 and auth.to_ocsf()["status_id"] == 2
    assert pull.to_ocsf()["type_uid"] == 600302 and pull.to_ocsf()["time"] == 2000
    assert pull.to_ocsf(technique_names={"AML.T0035": "AI Artifact Collection"})["attacks"][0][
        "technique"
    ] == {
        "uid": "AML.T0035",
        "name": "AI Artifact Collection",
    }
    assert flag.to_ocsf()["class_uid"] == 2004 and json.loads(flag.to_jsonl())["details"] == {"score": 0.9}
    with pytest.raises(ValueError, match="kind"):
        Event(time=0, kind="nonsense")


def test_a_spray_beyond_the_gateways_sample_keeps_its_client(vault: Vault, tmp_path: Path) -> None:
    """25 refused tokens from one address, 5 sampled: every event names 10.9.9.9 and the spray rule fires
    for that client alone (before: the 20 unsampled ones had client '-', a second 'client')."""
    import time

    from bastion.hunt import hunt
    from bastion.serve.observability import BatchedAuditWriter, RequestRecord

    writer = BatchedAuditWriter(vault.audit, target="digits:1", failure_sample=5, flush_s=0.05)
    now = time.time()
    for i in range(25):
        writer.record(
            RequestRecord(
                "-", "-", "digits", "1", "POST", "/v2/infer", 401, "deny:auth", 1.0, now + i / 100, "10.9.9.9"
            )
        )
    writer.record(
        RequestRecord("-", "-", "digits", "1", "POST", "/v2/infer", 401, "deny:auth", 1.0, now, "10.1.1.1")
    )
    writer.close()
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    refused = [e for e in store.events() if e.kind == "auth-failure" and e.source == "gateway"]
    assert sorted({e.client for e in refused}) == ["10.1.1.1", "10.9.9.9"]
    assert sum(e.count for e in refused) == 26 and len(refused) == 2  # one counted row per client
    sprays = [f for f in hunt(store=store, anomaly=False).findings if f.rule_id.endswith("302")]
    assert [(f.client, f.count) for f in sprays] == [("10.9.9.9", 25)]


def test_the_servers_counted_failures_carry_their_address() -> None:
    """bastion server logs failed authentications per source address (first alone, the rest counted)."""
    first, rest = (
        AuditEntry(
            index=i,
            actor="unauthenticated",
            action="auth",
            target="203.0.113.5",
            outcome="denied",
            timestamp="2026-12-01T10:00:00+00:00",
            details={"source": "203.0.113.5", "count": count, "window_s": 60.0},
        )
        for i, count in ((1, 1), (2, 24))
    )
    events = events_from_entry(first) + events_from_entry(rest)
    assert [e.count for e in events] == [1, 24] and {(e.kind, e.client, e.identity) for e in events} == {
        ("auth-failure", "203.0.113.5", "-")
    }
