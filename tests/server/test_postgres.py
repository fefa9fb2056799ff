"""The team scenario with the server's metadata in PostgreSQL (BASTION_TEST_POSTGRES_URL, a fresh schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._support.postgres import postgres_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url, prefix="bastion_srv") as url:
        yield url


def test_team_scenario_on_postgres(team_server: Any, pg_schema_url: str, tmp_path: Path) -> None:
    server = team_server(database_url=pg_schema_url)
    assert "postgresql" in (server.home / "bastion.toml").read_text()
    src = tmp_path / "m"
    src.mkdir()
    np.save(src / "w.npy", np.arange(256, dtype=np.float32))
    ok = server.cli("alice-ds", "registry", "push", str(src), "--name", "pg-model")
    assert ok.returncode == 0, ok.stderr
    prod = server.run("alice-ds", "registry", "push", str(src), "--name", "pg-model", "--env", "prod")
    assert prod.returncode == 2 and "may not registry:push on pg-model in prod" in prod.stderr
    assert server.run("dan-deployer", "registry", "push", str(src), "--name", "pg-model").returncode == 2
    assert server.run("aud-auditor", "registry", "verify", "pg-model:1").returncode == 0
    pull = server.run("aud-auditor", "registry", "pull", "pg-model:1", "--out", str(tmp_path / "o"))
    assert pull.returncode == 2 and "may not registry:pull" in pull.stderr
    out = server.run("alice-ds", "registry", "pull", "pg-model:1", "--out", str(tmp_path / "mine"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "mine" / "w.npy").read_bytes() == (src / "w.npy").read_bytes()
    listed = server.run("ada-admin", "token", "list")
    token_id = next(ln.split("\t")[0] for ln in listed.stdout.splitlines() if "\talice-ds\t" in ln)
    assert server.run("ada-admin", "token", "revoke", token_id).returncode == 0
    after = server.run("alice-ds", "registry", "list")
    assert after.returncode == 2 and after.stderr.strip() == "error: invalid API token"
    verify = server.run("aud-auditor", "log", "verify")
    assert verify.returncode == 0, verify.stderr
