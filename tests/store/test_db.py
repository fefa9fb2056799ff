"""Engine opening and table creation on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.errors import ConfigError
from bastion.store.db import Base, ensure_tables, open_engine, write_transaction


def test_sqlite_is_wal_and_idempotent(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'x.db'}")
    ensure_tables(engine)
    ensure_tables(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar()) >= 1000
    names = set(sa.inspect(engine).get_table_names())
    assert {
        "artifacts",
        "artifact_versions",
        "wrapped_keys",
        "audit_entries",
        "tree_heads",
        "api_tokens",
    } <= names
    assert set(Base.metadata.tables) >= names - {"sqlite_sequence"}
    with write_transaction(engine) as conn:
        conn.execute(sa.text("SELECT 1"))


def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        open_engine("mysql://x/y")
    with pytest.raises(ConfigError):
        open_engine("not a url")


@pytest.mark.postgres
def test_postgres_tables(postgres_url: str) -> None:
    schema = f"bastion_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = sa.engine.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        engine = open_engine(url.render_as_string(hide_password=False))
        ensure_tables(engine)
        ensure_tables(engine)
        assert "audit_entries" in sa.inspect(engine).get_table_names(schema=schema)
        with write_transaction(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
