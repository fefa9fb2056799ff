"""The vault against a real PostgreSQL server (a fresh schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests._support.postgres import postgres_schema

from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError
from bastion.vault import Vault, init_project, open_vault

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url, prefix="bastion") as url:
        yield url


@pytest.fixture
def pg_vault(tmp_path: Path, pg_schema_url: str) -> Iterator[Vault]:
    v = init_project(
        home=tmp_path / "home",
        passphrase="pw",
        database_url=pg_schema_url,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[],
    )
    yield v
    v.close()


def test_vault_on_postgres(pg_vault: Vault, artifact: Path, tmp_path: Path) -> None:
    assert pg_vault.engine.dialect.name == "postgresql"
    assert pg_vault.push(artifact, name="fraud", allow_unsafe=True).version == 1
    assert pg_vault.push(artifact, name="fraud", allow_unsafe=True).version == 2
    pg_vault.promote("fraud:1", to="prod")
    pg_vault.pull("fraud@prod", out=tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (artifact / "weights.bin").read_bytes()
    pg_vault.rotate_keys(env="prod")
    pg_vault.verify("fraud:1")
    pg_vault.annotate("fraud:1", namespace="audit", data={"ok": True})
    _, token = pg_vault.create_token(name="dep", role="deployer")
    dep = open_vault(home=pg_vault.settings.home, passphrase="pw", token=token, inspectors=[])
    assert [v.ref for v in dep.list()] == ["fraud:1"]
    dep.close()
    assert pg_vault.log_verify().size == len(pg_vault.audit.entries())
    with pg_vault.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE artifact_versions SET manifest_digest = :d WHERE version = 2"), {"d": "0" * 64}
        )
    with pytest.raises(IntegrityError):
        pg_vault.verify("fraud:2")


def test_concurrent_pushes_and_appends_on_postgres(pg_vault: Vault, artifact: Path) -> None:
    home = pg_vault.settings.home
    vaults = [open_vault(home=home, passphrase="pw", inspectors=[]) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda v: v.push(artifact, name="m", allow_unsafe=True).version, vaults))
    finally:
        for v in vaults:
            v.close()
    assert sorted(results) == [1, 2, 3]
    pg_vault.log_verify()
