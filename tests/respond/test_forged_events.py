"""Issue 17 H1: a home writer without the key ring forges, copies or skips event rows in ``events.db``.

Each attack is run with the defence (evidence re-derived from the signed log, a sealed cursor) and without it
(the responder trusting the store's rows, a collector that cannot seal its cursor).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bastion.events import AUDIT_CURSOR, EventStore, collect_audit
from bastion.hunt import hunt
from bastion.respond import Responder, load_playbook
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

COLUMNS = (
    "ts, kind, identity, client, model, action, outcome, status, source, severity, attacks, hour, weekday, "
    "audit_index, details"
)


def _forge(db: Path, identity: str, client: str) -> int:
    """What the insider does with plain sqlite3: a burst of requests and a bulk pull, no key needed."""
    now = time.time() - 30
    rows: list[tuple[Any, ...]] = []
    for i in range(300):
        t = time.gmtime(now + i * 0.1)
        rows.append((now + i * 0.1, "request", identity, client, "prod-model", "infer", "ok", 200, "gateway",
                     "info", "", t.tm_hour, t.tm_wday, None, "{}"))  # fmt: skip
    for i, m in enumerate("abcdef"):
        t = time.gmtime(now + i)
        rows.append((now + i, "pull", identity, "-", f"model-{m}", "registry:pull", "ok", 0, "audit", "info",
                     "", t.tm_hour, t.tm_wday, None, "{}"))  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(f"INSERT INTO bastion_events ({COLUMNS}) VALUES ({','.join('?' * 15)})", rows)
    return len(rows)


def _about(findings: Any, who: str) -> list[Any]:
    return [f for f in findings if who in (f.identity, f.client)]


def test_forged_rows_make_findings_but_no_action(vault: Vault, tmp_path: Path) -> None:
    _, token = vault.create_token(name="alice", role="admin")
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    _forge(db, "alice", "10.1.2.3")
    findings = list(hunt(store=store, anomaly=False).findings)
    assert _about(findings, "alice")  # the rules fire on the forged rows
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")
    # without the evidence check the responder would act against alice and her colleague's address
    planned = {(p.action, p.target) for p, _ in responder.plan(findings)}
    assert ("disable-identity", "alice") in planned or ("revoke-tokens", "alice") in planned
    # with it: every action on the forged findings is refused, and the refusal is in the signed log
    results = responder.respond(findings, events=store)
    assert results and {r.status for r in results if r.target in ("alice", "10.1.2.3")} == {"refused"}
    assert vault.authenticate(token).name == "alice"
    state = responder.state()
    assert not state.blocked_identities and not state.blocked_clients
    refusals = [e for e in vault.log_entries() if e.outcome == "denied" and e.action.startswith("respond:")]
    assert refusals and "evidence refused" in refusals[0].details["detail"]
    store.close()


def test_real_pulls_still_act_and_copied_rows_are_refused(vault: Vault, tmp_path: Path) -> None:
    from bastion.vault import open_vault

    _, token = vault.create_token(name="dave", role="data-scientist")
    with open_vault(home=vault.settings.home, passphrase="correct horse battery staple", token=token) as dave:
        for i, name in enumerate(["m0", "m1", "m2", "m3", "m4", "m5"]):
            dave.pull(name, out=tmp_path / f"o{i}")
    _, carol_token = vault.create_token(name="carol", role="data-scientist")
    with open_vault(
        home=vault.settings.home, passphrase="correct horse battery staple", token=carol_token
    ) as carol:
        carol.pull("m0", out=tmp_path / "c0")
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    # the insider copies carol's one real pull row five times with other models: a "bulk pull" by carol
    with sqlite3.connect(db) as conn:
        for i in range(5):
            cols = COLUMNS.replace("model,", f"'x{i}' AS model,")
            conn.execute(
                f"INSERT INTO bastion_events ({COLUMNS}) SELECT {cols} FROM bastion_events "
                "WHERE identity = 'carol' AND kind = 'pull' LIMIT 1"
            )
    findings = list(hunt(store=store, anomaly=False).findings)
    assert _about(findings, "carol") and _about(findings, "dave")
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond(findings, events=store)
    by_target = {(r.target, r.status) for r in results}
    assert ("dave", "done") in by_target  # the real bulk pull is still cut off
    assert {s for t, s in by_target if t == "carol"} == {"refused"}
    assert vault.authenticate(carol_token).name == "carol"
    store.close()


def _spray(vault: Vault, n: int = 60) -> None:
    writer = BatchedAuditWriter(vault.audit, target="m0:1", flush_s=0.05)
    now = time.time()
    for i in range(n):
        writer.record(
            RequestRecord(
                "-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 1.0, now + i * 0.2, "203.0.113.9"
            )
        )
    writer.close()


class _Unsealed:
    """A reader that offers the log but not the key ring (what the collector was before the seal)."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> list[Any]:
        return self._vault.log_entries(start=start, limit=limit)


def _move_cursor(db: Path, position: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE bastion_event_cursors SET position = ? WHERE name = ?", (position, AUDIT_CURSOR))


def test_a_cursor_moved_past_the_log_is_not_trusted(vault: Vault, tmp_path: Path) -> None:
    for sealed in (False, True):
        db = tmp_path / f"events-{sealed}.db"
        store = EventStore(f"sqlite:///{db}")
        reader: Any = vault if sealed else _Unsealed(vault)
        collect_audit(reader, store)
        _move_cursor(db, 1_000_000_000)  # the insider: one UPDATE, no key
        since = time.time() - 60
        _spray(vault)
        collect_audit(reader, store)
        sprays = [
            f for f in hunt(store=store, since=since, anomaly=False).findings if f.client == "203.0.113.9"
        ]
        assert bool(sprays) is sealed  # without the seal the spray in the signed log is never hunted
        store.close()


def test_a_cursor_rolled_back_does_not_duplicate_events(vault: Vault, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    _spray(vault)
    collect_audit(vault, store)
    count = store.count()
    with sqlite3.connect(db) as conn:  # replay an older cursor with its (valid) seal
        conn.execute("UPDATE bastion_event_cursors SET position = 1")
        conn.execute("UPDATE bastion_event_cursor_seals SET position = 1")
    collect_audit(vault, store)
    assert store.count() == count
    assert store.cursor(AUDIT_CURSOR) == vault.log_head().size
    store.close()


def test_forged_history_does_not_lower_a_real_bulk_pull(vault: Vault, tmp_path: Path) -> None:
    from bastion.hunt import verifier_for
    from bastion.vault import open_vault

    _, token = vault.create_token(name="dave", role="data-scientist")
    with open_vault(home=vault.settings.home, passphrase="correct horse battery staple", token=token) as dave:
        for i, name in enumerate(["m0", "m1", "m2", "m3", "m4", "m5"]):
            dave.pull(name, out=tmp_path / f"o{i}")
    db = tmp_path / "events.db"
    store = EventStore(f"sqlite:///{db}")
    collect_audit(vault, store)
    old = time.time() - 3 * 86_400
    with sqlite3.connect(db) as conn:  # "dave pulled 5 models in one hour three days ago" (the rollup only)
        w = int(old // 3600)
        conn.executemany(
            "INSERT INTO bastion_event_window_models VALUES (?,?,?,?)",
            [("dave", "-", w, f"x{i}") for i in range(5)],
        )

    def bulk(report: Any) -> str:
        return next(f.severity for f in report.findings if f.rule_id.endswith("402") and f.identity == "dave")

    assert bulk(hunt(store=store, anomaly=False)) == "low"  # trusted history: lowered to an approval
    assert bulk(hunt(store=store, anomaly=False, verify=verifier_for(vault, store))) == "high"
    store.close()
