"""Issue 17, fourth cold review (attack17d) A6: one forged row without an audit index shielded a real attack.

An insider who can write ``events.db`` (not the key ring) inserted one row with ``audit_index`` NULL naming a
token sprayer's address with a large count. The seal mismatch made the next collection rewind, but the rewind
dropped only rows derived from entries at or after its position, so the forged row survived, was sealed in,
was named first by the spray rule and made the evidence check refuse the real finding: the sprayer was never
blocked, and every ``--watch`` tick logged the same refusal again (a new entry, so a new hunt, forever).
Now the rewind drops every row derived from no entry, and a refusal is logged once per finding and evidence.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bastion.events import EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.vault import Vault

SPRAYER = "198.51.100.7"
COLUMNS = (
    "ts, kind, identity, client, model, action, outcome, status, source, severity, attacks, hour, weekday, "
    "audit_index, details, count"
)


def _forge_null_row(db: Path, client: str, when: float) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"INSERT INTO bastion_events ({COLUMNS}) VALUES "
            "(?, 'auth-failure', '-', ?, 'm', 'x', 'denied', 401, 'gateway', 'low', 'AML.T0012', 0, 0, NULL, "
            "'{}', 100000)",
            (when, client),
        )


def _spray(vault: Vault) -> None:
    batch = {
        "requests": [],
        "unauthenticated": {"by_client": [{"client": SPRAYER, "decision": "deny:auth"} | {"count": 50}]},
    }
    vault.audit.append(actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=batch)


def _nulls(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM bastion_events WHERE audit_index IS NULL").fetchone()[0]
        )


def test_a6_forged_null_row_is_dropped_and_the_real_spray_blocked(vault: Vault, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    _forge_null_row(db, SPRAYER, time.time() + 5)
    _spray(vault)
    collect_audit(vault, store)  # the seal no longer matches: rewound, the forged row must not survive
    assert _nulls(db) == 0
    findings = list(hunt(store=store, anomaly=False, since=time.time() - 3600).findings)
    assert any(f.client == SPRAYER for f in findings)
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings, events=store)
    assert ("block-client", SPRAYER, "done") in {(r.action, r.target, r.status) for r in results}
    store.close()


def test_a6_a_refused_finding_is_logged_once(vault: Vault, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    _forge_null_row(db, SPRAYER, time.time() - 5)  # not collected again: its finding stays refused
    findings = [f for f in hunt(store=store, anomaly=False, since=time.time() - 3600).findings]
    assert any(f.client == SPRAYER for f in findings)
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")
    size = vault.audit.size()
    for _ in range(4):  # what four --watch ticks over the same refused finding do
        results = responder.respond(findings, events=store)
        assert {r.status for r in results if r.target == SPRAYER} == {"refused"}
    refusals = [
        e for e in vault.log_entries(start=size) if e.action.startswith("respond:") and e.outcome == "denied"
    ]
    assert len(refusals) == len({(e.action, e.target) for e in refusals})  # once each, not once per tick
    store.close()


def test_a6_a_replaced_store_with_a_forged_row_is_not_trusted(vault: Vault, tmp_path: Path) -> None:
    """The same row in a store deleted and recreated before the next collection (no cursor, no collected row):
    a non-empty store nobody sealed is not trusted, so the row is dropped before the log is collected."""
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    store.close()
    db.unlink()  # the insider replaces events.db
    store = EventStore(f"sqlite:///{db}")
    _forge_null_row(db, SPRAYER, time.time() + 5)
    _spray(vault)
    collect_audit(vault, store)
    assert _nulls(db) == 0
    findings = list(hunt(store=store, anomaly=False, since=time.time() - 3600).findings)
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings, events=store)
    assert ("block-client", SPRAYER, "done") in {(r.action, r.target, r.status) for r in results}
    store.close()
