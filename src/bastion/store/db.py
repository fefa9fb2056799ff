"""The metadata database: one SQLAlchemy ``Base`` for every package's tables, engine opening, write locking.

SQLite (the default, ``sqlite:///HOME/bastion.db``) is opened in WAL mode with a busy timeout, and with real
transactions (``BEGIN`` is emitted by us, not guessed by the driver). PostgreSQL is opened by URL
(``postgresql+psycopg://…``); ``?options=-csearch_path%3DNAME`` selects a schema.

Writers that must be serialised (audit-log appends, version numbering) open :func:`write_transaction`, whose
first statement updates a row of ``bastion_locks``: on SQLite that takes the database write lock (waiting up
to the busy timeout), on PostgreSQL a row lock held until commit. The same code is therefore safe with
concurrent writers on both back ends.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase

from bastion.errors import ConfigError, ServiceError

SQLITE_BUSY_TIMEOUT_MS = 30_000
LOCK_NAMES: tuple[str, ...] = ("bastion",)


class Base(DeclarativeBase):
    """Declarative base shared by every package's tables."""


locks_table = sa.Table(
    "bastion_locks",
    Base.metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("counter", sa.BigInteger, nullable=False, default=0),
)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (microseconds kept)."""
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let us control transactions: the driver's implicit BEGIN would start too late for the write lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _create_private(database: str | None) -> None:
    """Create a new SQLite file 0600 before SQLite does (it would use 0644 whatever the umask)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the metadata database {database} ({exc.strerror})") from exc
    os.close(fd)


def open_engine(url: str) -> Engine:
    """Open the metadata database at ``url`` (SQLite path URL or PostgreSQL URL)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"invalid database URL ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _create_private(parsed.database)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"unsupported database back end {backend!r} (use sqlite or postgresql)")


def ensure_tables(engine: Engine) -> None:
    """Create every table registered on ``Base.metadata`` (bastion's own tables are imported here)."""
    import bastion.store.tables  # noqa: F401 - registers the store/access/vault tables

    try:
        try:
            Base.metadata.create_all(engine)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            Base.metadata.create_all(engine)  # a concurrent process created a table first: check again
        try:
            with engine.begin() as conn:
                existing = set(conn.execute(sa.select(locks_table.c.name)).scalars())
                for name in LOCK_NAMES:
                    if name not in existing:
                        conn.execute(sa.insert(locks_table).values(name=name, counter=0))
        except sa.exc.IntegrityError:
            pass  # another process inserted the lock row first
    except sa.exc.DatabaseError as exc:  # unreachable server, or a file that is not a database
        reason = (str(exc.orig).splitlines() or ["unknown error"])[0]
        raise ServiceError(f"metadata database unavailable or not a bastion database: {reason}") from exc


@contextmanager
def write_transaction(engine: Engine, *, lock: str = "bastion") -> Iterator[Connection]:
    """A transaction that holds the named write lock from its first statement until commit or rollback."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(locks_table).where(locks_table.c.name == lock).values(counter=locks_table.c.counter + 1)
        )
        if result.rowcount != 1:
            raise ServiceError(f"lock row {lock!r} missing: run ensure_tables first")
        yield conn


__all__ = ["Base", "ensure_tables", "open_engine", "utcnow", "write_transaction"]
