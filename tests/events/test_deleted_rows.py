"""Issue 17, third cold review (attack17c) F6: deleting collected rows hid an attack.

An insider who can write ``events.db`` (not the key ring) deleted an attack's rows from the events table
and the rollup after a collection; the collector checked only its sealed cursor and the top of the store,
so every later ``bastion hunt`` / ``respond`` found nothing. A count lowered below 1 hid it too. The
cursor's seal now covers the store's row count, summed count and rollup sum: the next collection sees the
difference, rewinds and re-collects the audit log, and the attack is found again.
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
from bastion.vault import Vault

__all__ = ["vault"]  # the fixture
BURST = "0b7f3a10-5d1e-4c8a-9f00-000000000102"


def _burst(vault: Vault, now: float) -> None:
    """400 requests in 40 s by mallory, as the gateway's batched writer logs them."""
    records = [
        {"ts": now - 40 + i * 0.1, "identity": "mallory", "client": "198.51.100.23", "status": 200}
        | {"decision": "allow", "model": "m0", "path": "/v1/predict", "latency_ms": 2}
        for i in range(400)
    ]
    vault.audit.append(
        actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details={"requests": records}
    )


def _found(store: EventStore, now: float) -> bool:
    found = hunt(store=store, anomaly=False, since=now - 3600).findings
    return any(f.rule_id == BURST and f.identity == "mallory" for f in found)


@pytest.mark.parametrize("tamper", ["delete", "delete-events-only", "delete-rollup-only", "negative-count"])
def test_f6_tampered_rows_are_recollected(vault: Vault, tmp_path: Path, tamper: str) -> None:
    now = time.time()
    _burst(vault, now)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    assert _found(store, now)  # control
    mallory = events_table.c.identity == "mallory"
    with store.engine.begin() as conn:
        if tamper.startswith("delete") and tamper != "delete-rollup-only":
            conn.execute(sa.delete(events_table).where(mallory))
        if tamper in ("delete", "delete-rollup-only"):
            conn.execute(sa.delete(rollup_table))
        if tamper == "negative-count":  # one row standing for -399 requests: the window sums to 0
            first = conn.execute(sa.select(sa.func.min(events_table.c.id)).where(mallory)).scalar()
            conn.execute(sa.update(events_table).where(events_table.c.id == first).values(count=-399))
    if tamper != "delete-rollup-only":
        assert not _found(store, now)  # what the hunt saw from then on, before the defence
    vault.list()  # any later entry: the cursor moved on before (a collection reads only what is new)
    collect_audit(vault, store)  # the next `bastion hunt` / respond tick collects first
    assert _found(store, now)
    assert store.totals()[2] >= 1
    store.close()


def test_f6_an_untouched_store_is_not_recollected(
    vault: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _burst(vault, time.time())
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    vault.list()
    with caplog.at_level("WARNING", logger="bastion.events.collect"):
        assert collect_audit(vault, store) == 1
    assert "re-collecting" not in caplog.text
    store.close()
