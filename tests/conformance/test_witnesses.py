"""Log-witness conformance (issue 13 item 5): the contract of :class:`bastion.store.interface.Witness`, run
for every implementation — the append-only file and the ``bastion witness`` HTTPS service on 127.0.0.1.

Contract: a fresh witness holds no head; after ``submit`` its ``heads()`` include the latest head, each
authenticated; and a log that is rolled back (entries and heads rewritten together, by someone holding the
home and its key) fails ``AuditLog.verify`` against the witness — the attack passes without a witness."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests._support.server_thread import ServerThread

from bastion.crypto.signing import Ed25519Signer
from bastion.errors import IntegrityError
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine
from bastion.store.interface import Witness
from bastion.store.tables import audit_entries, tree_heads
from bastion.store.witness import FileWitness, HttpWitness


@contextlib.contextmanager
def _server(app: Any, *, ssl: tuple[Path, Path]) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1:<ephemeral> in a thread; yields its https URL."""
    with ServerThread(app, ssl=ssl) as server:
        yield server.url


def _file(tmp_path: Path, signer: Ed25519Signer, stack: contextlib.ExitStack) -> Witness:
    (tmp_path / "elsewhere").mkdir()
    return FileWitness(tmp_path / "elsewhere" / "heads.jsonl")


def _http(tmp_path: Path, signer: Ed25519Signer, stack: contextlib.ExitStack) -> Witness:
    from bastion.serve.tls import self_signed_certificate
    from bastion.witness.app import create_app
    from bastion.witness.service import WitnessService

    service = WitnessService.init(tmp_path / "witness", log_public_key_pem=signer.public_key_pem())
    cert, key = self_signed_certificate(tmp_path / "tls")
    url = stack.enter_context(_server(create_app(service), ssl=(cert, key)))
    witness = HttpWitness(url, public_key_pem=service.public_key_pem(), ca=str(cert))
    stack.callback(witness.close)
    return witness


@pytest.fixture(params=[pytest.param(_file, id="file"), pytest.param(_http, id="https")])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AuditLog, Witness]]:
    signer = Ed25519Signer.generate()
    engine = open_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine)
    with contextlib.ExitStack() as stack:
        witness = request.param(tmp_path, signer, stack)
        log = AuditLog(engine, signer, witnesses=[witness])
        yield log, witness
        log.close()
    engine.dispose()


def _fill(log: AuditLog, n: int, *, actor: str = "alice") -> None:
    for i in range(n):
        log.append(actor=actor, action="registry:push", target=f"m:{i}", outcome="ok", details={"i": i})


def test_submitted_heads_are_held(setup: tuple[AuditLog, Witness]) -> None:
    log, witness = setup
    assert isinstance(witness, Witness) and witness.name
    assert witness.heads() == []
    _fill(log, 3)
    held = witness.heads()
    assert held and max(h.size for h in held) == 3 and log.tree_head() in held
    result = log.verify()
    assert result.size == 3 and [w.size for w in result.witnesses] == [3]


def test_a_rolled_back_log_fails_against_the_witness(setup: tuple[AuditLog, Witness]) -> None:
    log, _ = setup
    _fill(log, 4)
    # the home's holder rewrites history: drop entries 2.. and their heads, append a forged tail (re-signed)
    with log.engine.begin() as conn:
        conn.execute(sa.delete(audit_entries).where(audit_entries.c.idx >= 2))
        conn.execute(sa.delete(tree_heads).where(tree_heads.c.size > 2))
    unwitnessed = AuditLog(log.engine, log.signer)
    _fill(unwitnessed, 2, actor="mallory")
    assert unwitnessed.verify().size == 4  # without a witness the rewrite verifies
    with pytest.raises(IntegrityError):
        log.verify()
