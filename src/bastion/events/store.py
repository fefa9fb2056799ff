"""The event store: one table of :class:`~bastion.events.schema.Event` rows (SQLite, or PostgreSQL by URL).

The default is ``sqlite:///HOME/events.db`` (its own file, so a week of gateway traffic does not grow the
metadata database that holds the registry); ``$BASTION_EVENTS_URL`` or ``url=`` selects another database,
e.g. ``postgresql+psycopg://…`` as for the metadata store. Columns are the fields the hunting rules filter
and group on (``kind``, ``identity``, ``client``, ``model``, ``outcome``, ``hour``, ``weekday``) plus ``ts``
(unix seconds), indexed on time, identity, client and kind (and kind + identity + client + time). Each
append also updates an hourly rollup (event counts per identity, client, hour, kind and outcome; the models
touched), so the anomaly model reads thousands of windows instead of scanning every event. A collector's
position (e.g. the audit-log index it has read up to) is stored in the same transaction as the events it
produced, so a crash never loses nor duplicates events.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from bastion.errors import ServiceError
from bastion.events.schema import Event
from bastion.store.db import open_engine

EVENTS_URL_ENV = "BASTION_EVENTS_URL"
TABLE = "bastion_events"

metadata = sa.MetaData()
events_table = sa.Table(
    TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("identity", sa.String(200), nullable=False),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("attacks", sa.String(200), nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("weekday", sa.Integer, nullable=False),
    sa.Column("audit_index", sa.BigInteger, nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_bastion_events_ts", "ts"),
    sa.Index("ix_bastion_events_identity", "identity", "ts"),
    sa.Index("ix_bastion_events_client", "client", "ts"),
    sa.Index("ix_bastion_events_kind", "kind", "ts"),
    # covers the correlations' PARTITION BY identity, client ORDER BY ts per kind: no sort of a million rows
    sa.Index("ix_bastion_events_kind_group", "kind", "identity", "client", "ts"),
)
WINDOW_S = 3600  # the rollup's window: the anomaly model scores (identity, client, hour) windows
rollup_table = sa.Table(
    "bastion_event_rollup",
    metadata,
    sa.Column("identity", sa.String(200), primary_key=True),
    sa.Column("client", sa.String(200), primary_key=True),
    sa.Column("w", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
window_models_table = sa.Table(
    "bastion_event_window_models",
    metadata,
    sa.Column("identity", sa.String(200), primary_key=True),
    sa.Column("client", sa.String(200), primary_key=True),
    sa.Column("w", sa.BigInteger, primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
)
cursors_table = sa.Table(
    "bastion_event_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def default_events_url(home: Path) -> str:
    return os.environ.get(EVENTS_URL_ENV) or f"sqlite:///{home / 'events.db'}"


def _row(event: Event) -> dict[str, Any]:
    when = dt.datetime.fromtimestamp(event.time, dt.UTC)
    return {
        "ts": event.time,
        "kind": event.kind,
        "identity": event.identity[:200],
        "client": event.client[:200],
        "model": event.model[:200],
        "action": event.action[:64],
        "outcome": event.outcome,
        "status": event.status,
        "source": event.source[:32],
        "severity": event.severity,
        "attacks": ",".join(event.attacks)[:200],
        "hour": when.hour,
        "weekday": when.weekday(),
        "audit_index": event.audit_index,
        "details": json.dumps(dict(event.details), sort_keys=True, separators=(",", ":"), default=str),
    }


def event_from_row(row: Any) -> Event:
    return Event(
        id=int(row.id),
        time=float(row.ts),
        kind=row.kind,
        identity=row.identity,
        client=row.client,
        model=row.model,
        action=row.action,
        outcome=row.outcome,
        status=int(row.status),
        source=row.source,
        severity=row.severity,
        attacks=tuple(a for a in row.attacks.split(",") if a),
        audit_index=None if row.audit_index is None else int(row.audit_index),
        details=json.loads(row.details),
    )


class EventStore:
    """Append and read events; ``url`` is a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        try:
            metadata.create_all(self.engine)
        except sa.exc.DatabaseError as exc:
            reason = (str(exc.orig).splitlines() or ["unknown error"])[0]
            raise ServiceError(f"event store unavailable: {reason}") from exc
        self.table = TABLE

    @classmethod
    def for_home(cls, home: Path) -> EventStore:
        return cls(default_events_url(home))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, events: Iterable[Event], *, cursor: tuple[str, int] | None = None) -> int:
        """Insert events (and move ``cursor`` = (name, position)) in one transaction; returns the count."""
        rows = [_row(e) for e in events]
        counts: Counter[tuple[str, str, int, str, str]] = Counter()
        models: set[tuple[str, str, int, str]] = set()
        for r in rows:
            w = int(r["ts"] // WINDOW_S)
            counts[(r["identity"], r["client"], w, r["kind"], r["outcome"])] += 1
            models.add((r["identity"], r["client"], w, r["model"]))
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 50_000):
                conn.execute(sa.insert(events_table), rows[start : start + 50_000])
            if counts:
                up = insert(rollup_table)
                conn.execute(
                    up.on_conflict_do_update(
                        index_elements=["identity", "client", "w", "kind", "outcome"],
                        set_={"n": rollup_table.c.n + up.excluded.n},
                    ),
                    [
                        {"identity": i, "client": c, "w": w, "kind": k, "outcome": o, "n": n}
                        for (i, c, w, k, o), n in counts.items()
                    ],
                )
                conn.execute(
                    insert(window_models_table).on_conflict_do_nothing(),
                    [{"identity": i, "client": c, "w": w, "model": m} for i, c, w, m in models],
                )
            if cursor is not None:
                name, position = cursor
                done = conn.execute(
                    sa.update(cursors_table).where(cursors_table.c.name == name).values(position=position)
                )
                if done.rowcount != 1:
                    conn.execute(sa.insert(cursors_table).values(name=name, position=position))
        return len(rows)

    def cursor(self, name: str) -> int:
        """A collector's stored position (0 when it has not run yet)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(cursors_table.c.position).where(cursors_table.c.name == name)
            ).scalar()
        return int(value or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar() or 0)

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(events_table.c.id))).scalar() or 0)

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        ids: Sequence[int] | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        query = sa.select(events_table).order_by(events_table.c.ts, events_table.c.id)
        if since is not None:
            query = query.where(events_table.c.ts >= since)
        if until is not None:
            query = query.where(events_table.c.ts < until)
        if ids is not None:
            query = query.where(events_table.c.id.in_(list(ids)))
        if after_id is not None:
            query = query.where(events_table.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [event_from_row(r) for r in conn.execute(query)]

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Run one read-only SELECT generated by the hunting engine (never user text)."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params or {}))


__all__ = [
    "EVENTS_URL_ENV",
    "WINDOW_S",
    "EventStore",
    "default_events_url",
    "event_from_row",
    "events_table",
    "rollup_table",
    "window_models_table",
]
