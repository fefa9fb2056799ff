"""Two writers at once on one SQLite database: revoke_scopes (read, then write) opens as a writer and waits
for the other instead of failing with a raw "database is locked" (the responder and an admin together)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bastion.access import AccessControl
from bastion.crypto.seal import RowSealer
from bastion.crypto.signing import Ed25519Signer
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine

MODELS = [f"m{i}" for i in range(12)]


def test_two_concurrent_writers_revoke_scopes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'access.db'}"
    signer, sealer = Ed25519Signer.generate(), RowSealer(os.urandom(32))
    first = open_engine(url)
    ensure_tables(first)
    owner = AccessControl(first, AuditLog(first, signer), sealer=sealer)
    owner.create_owner()
    for who in ("ann", "ben"):
        owner.grant(name=who, role="ml-engineer", models=MODELS)
    writers = [owner, AccessControl(open_engine(url), AuditLog(open_engine(url), signer), sealer=sealer)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def revoke_all(control: AccessControl, who: str) -> None:
        start.wait()
        try:
            for model in MODELS:
                control.revoke_scopes(name=who, models=(model,))
                control.grant(name=who, models=(model + "-b",))  # interleave a second kind of write
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=revoke_all, args=(c, w)) for c, w in zip(writers, ("ann", "ben"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], [str(e)[:200] for e in errors]
    for who in ("ann", "ben"):
        assert sorted(owner.identity(who).models) == sorted(m + "-b" for m in MODELS)
