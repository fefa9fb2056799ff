"""Issue 17 re-attack F1: a forged hourly rollup must not make an innocent identity or address "exceed" a
cumulative threshold.

The attacker writes ``events.db`` (no key ring): one UPDATE of ``bastion_event_rollup`` used to raise a
finding whose named events were the victim's genuine ones, so the evidence check passed and the playbook
blocked and revoked her. The count is now re-derived from the event rows, and the finding names rows that
alone reach the threshold.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from bastion.events.schema import Event
from bastion.events.store import EventStore, rollup_table
from bastion.hunt.cumulative import Thresholds, cumulative_findings

T0 = 1_796_000_400.0  # an hour boundary


def _inflate(store: EventStore, **where: str) -> int:
    r = rollup_table.c
    with store.engine.begin() as conn:
        q = sa.update(rollup_table).where(*(getattr(r, k) == v for k, v in where.items())).values(n=25_000)
        return int(conn.execute(q).rowcount)


def test_forged_request_rollup_raises_no_finding(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append([Event(time=T0, kind="request", identity="alice", client="198.51.100.7", model="m1")])
    assert cumulative_findings(store) == []
    assert _inflate(store, identity="alice", kind="request") == 1
    # the rollup alone says 25,000 requests in a day: before the fix this was an extraction finding on alice
    r = rollup_table.c
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(r.n).where(r.identity == "alice")).scalar_one() >= 20_000
    assert cumulative_findings(store) == []


def test_forged_refused_token_rollup_raises_no_finding(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append([Event(time=T0, kind="auth-failure", client="192.0.2.10", outcome="denied")])
    assert _inflate(store, client="192.0.2.10", kind="auth-failure") == 1
    assert cumulative_findings(store) == []


def test_genuine_counted_rows_name_events_that_reach_the_threshold(tmp_path: Path) -> None:
    """A real extraction (gateway windows: one row per batch with its count) is still found, its count is the
    events' sum, and the rows it names carry the whole threshold (the evidence check verifies each)."""
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    rows = [
        Event(
            time=T0 + i * 60.0,
            kind="request",
            identity="mallory",
            client="203.0.113.5",
            model="m1",
            count=300,
        )
        for i in range(80)
    ]
    store.append(rows)
    found = cumulative_findings(store, limits=Thresholds(requests_per_day=20_000))
    assert len(found) == 1 and found[0].severity == "high" and found[0].count == 24_000
    named = {e.id: e.count for e in store.events(ids=list(found[0].event_ids))}
    assert sum(named.values()) >= 20_000


def test_count_spread_over_more_rows_than_named_is_low_severity(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(
        [
            Event(time=T0 + i * 0.5, kind="auth-failure", client="192.0.2.10", outcome="denied")
            for i in range(2_100)
        ]
    )
    found = cumulative_findings(store, limits=Thresholds(refused_per_prefix_hour=2_050))
    assert [f.severity for f in found] == ["low"] and "not verifiable" in found[0].title
