"""Metadata-store conformance (issue 13 item 5): the contract in
:data:`bastion.store.interface.METADATA_STORE_CONTRACT`, run for SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.crypto.signing import Ed25519Signer
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine, utcnow, write_transaction
from bastion.store.tables import artifacts, audit_entries


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = open_engine(database_url)
    ensure_tables(e)
    ensure_tables(e)  # idempotent
    yield e
    e.dispose()


def test_a_failed_transaction_leaves_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        conn.execute(sa.insert(artifacts).values(name="m", kind="model", created_at=utcnow(), created_by="a"))
        raise RuntimeError("crash before the commit")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(artifacts)).scalar_one() == 0


def test_timestamps_and_binary_round_trip(engine: Engine) -> None:
    now = dt.datetime(2026, 12, 5, 3, 4, 5, 678901, tzinfo=dt.UTC)
    blob = bytes(range(256)) * 3
    with write_transaction(engine) as conn:
        conn.execute(sa.insert(artifacts).values(name="m", kind="model", created_at=now, created_by="a"))
        conn.execute(sa.insert(audit_entries).values(idx=0, data=blob, leaf_hash=bytes(32)))
    with engine.connect() as conn:
        got = conn.execute(sa.select(artifacts.c.created_at)).scalar_one()
        stored = conn.execute(sa.select(audit_entries.c.data)).scalar_one()
    got = got if got.tzinfo else got.replace(tzinfo=dt.UTC)  # SQLite hands aware columns back naive
    assert got == now and bytes(stored) == blob


def test_concurrent_writers_get_distinct_consecutive_numbers(database_url: str, engine: Engine) -> None:
    """Four writers with their own engines (as separate processes would have) append to one audit log."""
    signer = Ed25519Signer.generate()

    def writer(k: int) -> None:
        own = open_engine(database_url)
        log = AuditLog(own, signer)
        try:
            for i in range(5):
                log.append(actor=f"w{k}", action="x", target=str(i), outcome="ok", details=None)
        finally:
            log.close()
            own.dispose()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    log = AuditLog(engine, signer)
    assert [e.index for e in log.entries()] == list(range(20))
    assert log.verify().size == 20
