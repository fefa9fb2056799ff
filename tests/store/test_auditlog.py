"""The Merkle audit log: appends, signed heads, proofs, and every kind of tampering is detected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.crypto.signing import Ed25519Signer
from bastion.errors import IntegrityError, InvalidInput
from bastion.store.auditlog import AuditLog, SignedTreeHead
from bastion.store.db import ensure_tables, open_engine
from bastion.store.tables import audit_entries, tree_heads


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    engine = open_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine)
    return AuditLog(engine, Ed25519Signer.generate(), witness_path=tmp_path / "head.json")


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(actor="alice", action="registry:push", target=f"m:{i}", outcome="ok", details={"i": i})


def test_append_verify_and_proofs(log: AuditLog) -> None:
    fill(log, 7)
    result = log.verify()
    assert result.size == 7 and result.heads_checked == 7
    head = log.tree_head()
    assert head.size == 7 and head.root_hash == result.root_hash
    for i in range(7):
        proof = log.prove_inclusion(i)
        assert proof.root_hash == head.root_hash
        proof.verify()
    for old in range(8):
        cp = log.prove_consistency(old, 7)
        cp.verify()
        if old:
            assert cp.old_root == log.signed_head(old).root_hash
    entries = log.entries()
    assert [e.index for e in entries] == list(range(7))
    assert entries[3].details == {"i": 3}


def test_bad_outcome_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInput):
        log.append(actor="a", action="x", target="t", outcome="maybe")


def _exec(log: AuditLog, stmt: sa.Executable) -> None:
    with log.engine.begin() as conn:
        conn.execute(stmt)


def test_edited_entry_is_detected(log: AuditLog) -> None:
    fill(log, 5)
    data = json.loads(
        log.engine.connect()
        .execute(sa.select(audit_entries.c.data).where(audit_entries.c.idx == 2))
        .scalar_one()
    )
    data["outcome"] = "denied"
    forged = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    _exec(log, sa.update(audit_entries).where(audit_entries.c.idx == 2).values(data=forged))
    with pytest.raises(IntegrityError):
        log.verify()
    # ... even when the attacker also recomputes the stored leaf hash
    from bastion.store.merkle import leaf_hash

    _exec(log, sa.update(audit_entries).where(audit_entries.c.idx == 2).values(leaf_hash=leaf_hash(forged)))
    with pytest.raises(IntegrityError, match="signed head"):
        log.verify()


def test_deleted_entry_is_detected(log: AuditLog) -> None:
    fill(log, 5)
    _exec(log, sa.delete(audit_entries).where(audit_entries.c.idx == 1))
    with pytest.raises(IntegrityError, match="missing"):
        log.verify()


def test_reordered_entries_are_detected(log: AuditLog) -> None:
    fill(log, 4)
    with log.engine.connect() as conn:
        rows = {r.idx: r for r in conn.execute(sa.select(audit_entries))}
    _exec(
        log,
        sa.update(audit_entries)
        .where(audit_entries.c.idx == 1)
        .values(data=rows[2].data, leaf_hash=rows[2].leaf_hash),
    )
    _exec(
        log,
        sa.update(audit_entries)
        .where(audit_entries.c.idx == 2)
        .values(data=rows[1].data, leaf_hash=rows[1].leaf_hash),
    )
    with pytest.raises(IntegrityError):
        log.verify()


def test_truncation_is_detected(log: AuditLog) -> None:
    fill(log, 6)
    _exec(log, sa.delete(audit_entries).where(audit_entries.c.idx >= 4))
    with pytest.raises(IntegrityError, match="truncated"):
        log.verify()


def test_rollback_of_entries_and_heads_is_caught_by_the_witness(log: AuditLog) -> None:
    fill(log, 6)
    saved = log.tree_head()
    _exec(log, sa.delete(audit_entries).where(audit_entries.c.idx >= 4))
    _exec(log, sa.delete(tree_heads).where(tree_heads.c.size > 4))
    with pytest.raises(IntegrityError, match="truncated"):
        log.verify()
    # without the witness file, a head the auditor saved earlier still catches it
    assert log.witness_path is not None
    log.witness_path.unlink()
    with pytest.raises(IntegrityError, match="truncated"):
        log.verify(trusted=saved)


def test_inserted_entry_is_detected(log: AuditLog) -> None:
    fill(log, 3)
    from bastion.store.auditlog import AuditEntry
    from bastion.store.merkle import leaf_hash

    extra = AuditEntry(
        index=3, actor="mallory", action="x", target="t", outcome="ok", timestamp="2026-01-01T00:00:00"
    )
    _exec(
        log,
        sa.insert(audit_entries).values(
            idx=3, data=extra.leaf_data(), leaf_hash=leaf_hash(extra.leaf_data())
        ),
    )
    with pytest.raises(IntegrityError, match="not covered"):
        log.verify()


def test_forged_head_signature_is_detected(log: AuditLog) -> None:
    fill(log, 3)
    with log.engine.connect() as conn:
        sig = conn.execute(sa.select(tree_heads.c.signature).where(tree_heads.c.size == 3)).scalar_one()
    _exec(
        log,
        sa.update(tree_heads).where(tree_heads.c.size == 3).values(signature=bytes([sig[0] ^ 1]) + sig[1:]),
    )
    with pytest.raises(IntegrityError, match="signature"):
        log.verify()


def test_head_signed_by_another_key_is_refused(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 2)
    other = AuditLog(log.engine, Ed25519Signer.generate())
    with pytest.raises(IntegrityError):
        other.verify()
    head = log.tree_head()
    forged = SignedTreeHead(
        size=head.size, root_hash=head.root_hash, timestamp=head.timestamp, signature=b"\x00" * 64
    )
    with pytest.raises(IntegrityError):
        log.verify(trusted=forged)


def test_concurrent_appends_get_distinct_consecutive_indices(log: AuditLog, tmp_path: Path) -> None:
    # separate engines = separate connections, like separate processes
    logs = [AuditLog(open_engine(f"sqlite:///{tmp_path / 'log.db'}"), log.signer) for _ in range(4)]
    errors: list[BaseException] = []

    def worker(w: AuditLog, k: int) -> None:
        try:
            for i in range(10):
                w.append(actor=f"w{k}", action="a", target=str(i), outcome="ok")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w, k)) for k, w in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert log.verify().size == 40
    assert sorted(e.index for e in log.entries()) == list(range(40))
