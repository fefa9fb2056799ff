"""Issue 17, fourth cold review (attack17d) A3: rows rewritten in place hid an attack from hunting.

The sealed cursor covered the store's row count, summed count and rollup sum; an insider who can write
``events.db`` (not the key ring) kept all three with ``UPDATE`` (a sprayer's rows turned into benign requests
from another address; counts moved between rows or rollup keys) and the next collection trusted the cursor.
The seal now also covers keyed hourly digests of the rows' contents, and the recent hours' rows and rollup are
re-read before the cursor is trusted: any such edit rewinds the store and re-collects the signed log.
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
SPRAYER = "198.51.100.7"


def _spray(vault: Vault) -> None:
    row = {"client": SPRAYER, "decision": "deny:auth", "count": 50}
    batch = {"requests": [], "unauthenticated": {"by_client": [row, {**row, "client": "198.51.100.8"}]}}
    vault.audit.append(actor="gateway", action="serve:requests", target="m0:1", outcome="ok", details=batch)


def _sprayers(store: EventStore) -> set[str]:
    found = hunt(store=store, anomaly=False, since=time.time() - 3600).findings
    return {f.client for f in found if f.client.startswith("198.51.100.")}


@pytest.mark.parametrize("tamper", ["rewrite-kind-client", "move-count", "move-rollup", "move-time"])
def test_a3_rows_updated_in_place_are_recollected(vault: Vault, tmp_path: Path, tamper: str) -> None:
    _spray(vault)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    assert SPRAYER in _sprayers(store)  # control
    e, r = events_table.c, rollup_table.c
    mine = e.client == SPRAYER
    with store.engine.begin() as conn:
        if tamper == "rewrite-kind-client":  # row count, summed count and rollup sum all kept
            conn.execute(
                sa.update(events_table).where(mine).values(kind="request", outcome="ok", client="10.1.2.3")
            )
        elif tamper == "move-count":  # 49 of the sprayer's 50 moved onto another row: the sums kept
            conn.execute(sa.update(events_table).where(mine).values(count=1))
            first = conn.execute(sa.select(sa.func.min(e.id)).where(~mine)).scalar()
            conn.execute(sa.update(events_table).where(e.id == first).values(count=e["count"] + 49))
        elif tamper == "move-rollup":  # the anomaly model's input: counts moved between rollup keys
            conn.execute(sa.update(rollup_table).where(r.client == SPRAYER).values(n=1))
            conn.execute(sa.update(rollup_table).where(r.client == "198.51.100.8").values(n=r.n + 49))
        else:  # the sprayer's row moved two days back, out of every recent hunt
            conn.execute(sa.update(events_table).where(mine).values(ts=e.ts - 2 * 86400))
    if tamper != "move-rollup":
        assert SPRAYER not in _sprayers(store)  # what the hunt saw from then on, before the defence
    vault.list()  # any later entry: a collection reads only what is new
    collect_audit(vault, store)  # the next `bastion hunt` / respond tick collects first
    assert SPRAYER in _sprayers(store)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(r.n)).where(r.client == SPRAYER)).scalar() == 50
    store.close()


def test_a3_untouched_store_is_not_recollected(
    vault: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _spray(vault)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    collect_audit(vault, store)
    for _ in range(3):  # several ticks, each with a new entry
        vault.list()
        with caplog.at_level("WARNING", logger="bastion.events.collect"):
            assert collect_audit(vault, store) == 1
    assert "re-collecting" not in caplog.text
    store.close()
