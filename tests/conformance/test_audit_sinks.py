"""Audit-sink conformance (issue 13 item 5): the contract of :class:`bastion.store.interface.AuditSink`, run
for every implementation — the Merkle audit log on each metadata store (SQLite, PostgreSQL).

(The gateway's ``_GatewayAuthAudit`` wrapper deliberately drops failed token checks, which its batched
request trail records instead; it is tested with the gateway, not here.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.crypto.signing import Ed25519Signer
from bastion.errors import IntegrityError, InvalidInput
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine
from bastion.store.interface import AuditSink
from bastion.store.tables import audit_entries


@pytest.fixture
def sink(database_url: str, tmp_path: Path) -> Iterator[AuditLog]:
    engine = open_engine(database_url)
    ensure_tables(engine)
    log = AuditLog(engine, Ed25519Signer.generate(), witness_path=tmp_path / "head.json")
    yield log
    log.close()
    engine.dispose()


def test_is_an_audit_sink(sink: AuditLog) -> None:
    assert isinstance(sink, AuditSink)


def test_entries_in_order_with_their_details_and_verified(sink: AuditLog) -> None:
    details = [
        None,
        {"n": 1, "eps": 0.5, "who": "Zoë", "nested": {"b": [1, 2], "a": None}},
        {"nan": float("nan")},
    ]
    for i, d in enumerate(details):
        sink.append(actor="alice", action="registry:push", target=f"m:{i}", outcome="ok", details=d)
    sink.append(actor="bob", action="keys:rotate", target="prod", outcome="denied", details={})
    sink.append(actor="bob", action="registry:pull", target="m", outcome="error", details={"error": "X"})
    entries = sink.entries()
    assert [(e.index, e.actor, e.target, e.outcome) for e in entries] == [
        (0, "alice", "m:0", "ok"),
        (1, "alice", "m:1", "ok"),
        (2, "alice", "m:2", "ok"),
        (3, "bob", "prod", "denied"),
        (4, "bob", "m", "error"),
    ]
    assert entries[0].details == {} and entries[1].details == details[1]
    result = sink.verify()
    assert result.size == 5 and sink.tree_head().size == 5


@pytest.mark.parametrize("outcome", ["maybe", "", "OK"])
def test_unknown_outcome_is_refused(sink: AuditLog, outcome: str) -> None:
    with pytest.raises(InvalidInput):
        sink.append(actor="a", action="x", target="t", outcome=outcome, details=None)
    assert sink.entries() == []


def test_an_edited_entry_fails_verification(sink: AuditLog) -> None:
    for i in range(3):
        sink.append(actor="alice", action="registry:push", target=f"m:{i}", outcome="ok", details={"i": i})
    with sink.engine.begin() as conn:
        data = conn.execute(sa.select(audit_entries.c.data).where(audit_entries.c.idx == 1)).scalar_one()
        conn.execute(
            sa.update(audit_entries)
            .where(audit_entries.c.idx == 1)
            .values(data=bytes(data).replace(b"alice", b"mallory"))
        )
    with pytest.raises(IntegrityError):
        sink.verify()
