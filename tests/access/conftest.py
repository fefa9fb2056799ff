from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._support.cli_home import home

from bastion.access import AccessControl
from bastion.crypto.seal import RowSealer
from bastion.crypto.signing import Ed25519Signer
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine

__all__ = ["control", "home"]


@pytest.fixture
def control(tmp_path: Path) -> Iterator[AccessControl]:
    engine = open_engine(f"sqlite:///{tmp_path / 'access.db'}")
    ensure_tables(engine)
    ac = AccessControl(engine, AuditLog(engine, Ed25519Signer.generate()), sealer=RowSealer(os.urandom(32)))
    ac.create_owner()
    yield ac
    engine.dispose()
