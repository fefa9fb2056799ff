"""Issue 17, third cold review (attack17c) F7: the 20,000-a-day extraction limit was never acted on.

A slow stream (250 requests every 70 s for about two hours: 25,000 gateway records of count 1) crossed the
per-day threshold, but the finding could name at most MAX_COUNT_IDS (2,000) rows, whose counts (2,000) do not
reach 20,000: severity low, "count not verifiable", approval only, by construction. A named row vouches for
its whole audit entry (the evidence check re-derives every event of it), so the finding now names one row per
``serve:requests`` entry and counts the matching events of those entries: severity high, acted on
automatically. An insider who pads a benign identity's entries with forged rows is still refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests._support.pushed_vault import vault

from bastion.events import EventStore, collect_audit
from bastion.events.store import events_table, rollup_table
from bastion.hunt import hunt
from bastion.hunt.cumulative import EXTRACTION_RULE, MAX_COUNT_IDS, UNVERIFIABLE, Thresholds
from bastion.respond import Responder, load_playbook
from bastion.vault import Vault

__all__ = ["vault"]  # the fixture

CLIENT = "198.51.100.23"


def _stream(vault: Vault, identity: str, batches: int, per_batch: int, now: float) -> None:
    """What the gateway's batched writer logs for a steady client: one entry per batch of records."""
    for b in range(batches):
        t0 = now - 7200 + b * 70
        records = [
            {
                "ts": t0 + i * 0.2,
                "identity": identity,
                "client": CLIENT,
                "model": "m0",
                "path": "/v1/predict",
                "status": 200,
                "decision": "allow",
                "latency_ms": 2,
            }
            for i in range(per_batch)
        ]
        vault.audit.append(
            actor="gateway",
            action="serve:requests",
            target="m0:1",
            outcome="ok",
            details={"requests": records},
        )


def _daily(store: EventStore, now: float) -> list:
    found = hunt(store=store, anomaly=False, since=now - 86400).findings
    return [f for f in found if f.rule_id == EXTRACTION_RULE and "per day" in f.title]


@pytest.mark.slow
def test_f7_a_slow_stream_over_the_daily_limit_is_acted_on(vault: Vault, tmp_path: Path) -> None:
    now = time.time()
    vault.create_token(name="mallory", role="consumer", models=["m0"])
    _stream(vault, "mallory", 100, 250, now)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    [finding] = _daily(store, now)
    # before: the MAX_COUNT_IDS rows with the largest counts carried 2,000 of the 25,000 (severity low)
    assert MAX_COUNT_IDS * 1 < Thresholds().requests_per_day <= finding.count <= 25_000
    assert finding.severity == "high" and UNVERIFIABLE not in finding.title
    named = store.events(ids=finding.event_ids)  # one row per gateway batch (of the episode's hours)
    assert len({e.audit_index for e in named}) == len(named) == len(finding.event_ids) <= 100
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond([finding], events=store)
    assert {(r.action, r.target, r.status) for r in results} >= {
        ("block-identity", "mallory", "done"),
        ("revoke-tokens", "mallory", "done"),
    }
    store.close()


def test_f7_forged_rows_padding_a_benign_stream_over_the_limit_are_refused(
    vault: Vault, tmp_path: Path
) -> None:
    """An events.db writer copies rows into the benign identity's genuine entries (10,000 real requests
    padded to 25,000): the finding names those entries, whose rows no longer match the signed log."""
    now = time.time()
    vault.create_token(name="bob", role="consumer", models=["m0"])
    _stream(vault, "bob", 40, 250, now)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    assert not _daily(store, now)
    with store.engine.begin() as conn:  # 15,000 copies of genuine rows, and the rollup raised to match
        query = sa.select(events_table).where(events_table.c.kind == "request")
        rows = [{k: v for k, v in r._mapping.items() if k != "id"} for r in conn.execute(query)]
        conn.execute(sa.insert(events_table), rows + rows[:5000])
        bob = rollup_table.c.identity == "bob"
        conn.execute(sa.update(rollup_table).where(bob).values(n=rollup_table.c.n * 5 // 2))
    [finding] = _daily(store, now)
    assert finding.count >= 20_000
    results = Responder(vault=vault, playbook=load_playbook(), mode="auto").respond([finding], events=store)
    assert results and all(r.status == "refused" and "audit entry" in r.detail for r in results)
    store.close()
