"""A fresh PostgreSQL schema per test, dropped afterwards (for tests taking the ``postgres_url`` fixture)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from bastion.store.db import open_engine


@contextmanager
def postgres_schema(base_url: str, *, prefix: str = "bastion") -> Iterator[str]:
    """A URL of ``base_url`` whose ``search_path`` is a new schema ``<prefix>_<random>``; the schema and
    all it holds are dropped on exit."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def postgres_engine(base_url: str, *, prefix: str = "bastion") -> Iterator[sa.Engine]:
    """bastion's engine (:func:`bastion.store.db.open_engine`) on a fresh schema, disposed before the drop."""
    with postgres_schema(base_url, prefix=prefix) as url:
        engine = open_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
