"""The event store and the whole rule pack (generated SQL included) on PostgreSQL, same answers as SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._support.postgres import postgres_schema

from bastion.events import EventStore
from bastion.hunt import hunt
from bastion.hunt.simulate import benign_week, campaign, score

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url, prefix="bastion") as url:
        yield url


def test_hunt_on_postgres_matches_sqlite(pg_url: str, tmp_path: Path) -> None:
    benign = benign_week(seed=1, apps=4, days=7)
    attack_events, attacks = campaign(seed=1)
    keys = []
    for url in (pg_url, f"sqlite:///{tmp_path / 'e.db'}"):
        store = EventStore(url)
        store.append(benign[: len(benign) // 2])
        store.append(benign[len(benign) // 2 :] + attack_events)  # the rollup adds up across appends
        report = hunt(store=store)
        assert store.dialect in ("postgresql", "sqlite")
        result = score(report.findings, attacks, benign_events=len(benign))
        assert result.missed == () and result.false_findings == 0
        keys.append(sorted((f.key, f.count, f.event_ids) for f in report.findings))
        store.close()
    assert keys[0] == keys[1]
