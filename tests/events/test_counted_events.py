"""Issue 17 M8: a flood of refused tokens is one counted event row per client and batch, not one row per
request, and everything that counts events counts it whole: the spray rule (``SUM(count)``), the hourly
rollup (what the anomaly model and the cumulative thresholds read) and the evidence check (an edited count
is refused)."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from bastion.events import Event, EventStore, collect_audit
from bastion.events.store import TABLE, rollup_table
from bastion.events.verify import EvidenceVerifier
from bastion.hunt import hunt
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.vault import Vault

FLOOD = 10_000
SPRAY_RULE = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


def _spray(vault: Vault, n: int, client: str = "198.51.100.7") -> None:
    writer = BatchedAuditWriter(vault.audit, target="m1:1", flush_s=60.0, max_queue=2 * n)
    now = time.time()
    for i in range(n):
        writer.record(
            RequestRecord(
                "-", "-", "m1", "1", "POST", "/v2/infer", 401, "deny:auth", 0.1, now + i / n, client
            )
        )
    writer.close()


def _sprays(store: EventStore) -> set[tuple[str, int]]:
    """(client, count) of the token-spray findings (the one-minute rule and the hourly cumulative one)."""
    return {(f.client, f.count) for f in hunt(store=store, anomaly=False).findings if f.rule_id == SPRAY_RULE}


def test_a_flood_of_refused_tokens_is_one_row_and_still_a_spray(vault: Vault, tmp_path: Path) -> None:
    _spray(vault, FLOOD)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    refused = [e for e in store.events() if e.kind == "auth-failure"]
    assert len(refused) <= 2 and sum(e.count for e in refused) == FLOOD  # before: 10,000 rows
    assert _sprays(store) == {("198.51.100.7", FLOOD)}
    with store.engine.connect() as conn:
        hourly = conn.execute(
            sa.select(sa.func.sum(rollup_table.c.n)).where(rollup_table.c.kind == "auth-failure")
        ).scalar()
    assert hourly == FLOOD
    # the same requests stored one row each (what the collector did before) give the same finding
    flat = EventStore(f"sqlite:///{tmp_path / 'flat.db'}")
    when = refused[0].time
    flat.append(
        [
            Event(time=when + i / FLOOD, kind="auth-failure", client="198.51.100.7", outcome="denied")
            for i in range(FLOOD)
        ]
    )
    assert flat.count() == FLOOD and _sprays(flat) == {("198.51.100.7", FLOOD)}


def test_under_the_threshold_is_no_spray(vault: Vault, tmp_path: Path) -> None:
    _spray(vault, 19)  # the rule's threshold is 20 in a minute: the count is compared, not the row
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    assert _sprays(store) == set()


def test_an_edited_count_fails_the_evidence_check(vault: Vault, tmp_path: Path) -> None:
    _spray(vault, 500)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    (row,) = [e for e in store.events() if e.kind == "auth-failure"]
    assert EvidenceVerifier(log=vault, store=store).check([row.id or 0]) is None
    with store.engine.begin() as conn:  # a home writer makes the spray look bigger (or smaller)
        conn.execute(sa.text(f"UPDATE {TABLE} SET count = 5000 WHERE id = :i"), {"i": row.id})
    assert "do not match audit entry" in (EvidenceVerifier(log=vault, store=store).check([row.id or 0]) or "")


def test_a_store_made_before_counts_gets_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    EventStore(url).append([Event(time=1.0, kind="pull", identity="dave")])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_bastion_events_kind_group"))  # as it was: without count
        conn.execute(sa.text(f"ALTER TABLE {TABLE} DROP COLUMN count"))
        conn.execute(
            sa.text(f"CREATE INDEX ix_bastion_events_kind_group ON {TABLE} (kind, identity, client, ts)")
        )
    engine.dispose()
    store = EventStore(url)
    assert [e.count for e in store.events()] == [1]
    store.append([Event(time=2.0, kind="auth-failure", client="10.0.0.1", outcome="denied", count=7)])
    assert [e.count for e in store.events()] == [1, 7]
