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
    # occurrences the row stands for: a flood of refused tokens from one client in one gateway batch or one
    # server window is one row with its count (rules, the rollup and the evidence check sum it)
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_bastion_events_ts", "ts"),
    sa.Index("ix_bastion_events_identity", "identity", "ts"),
    sa.Index("ix_bastion_events_client", "client", "ts"),
    sa.Index("ix_bastion_events_kind", "kind", "ts"),
    # covers the correlations' PARTITION BY identity, client ORDER BY ts per kind (and the SUM(count) they
    # take): no sort of a million rows, no table read
    sa.Index("ix_bastion_events_kind_group", "kind", "identity", "client", "ts", "count"),
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
# a cursor's HMAC (the key ring's row sealer, :mod:`bastion.crypto.seal`): a home writer without the key ring
# cannot move the collector past audit entries (they would never become events) without the collector noticing
cursor_seals_table = sa.Table(
    "bastion_event_cursor_seals",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("seal", sa.LargeBinary, nullable=False),
)
# per hour of event time (``w``): a keyed digest of the rows' contents and their number, kept by the collector
# (:mod:`bastion.events.rowseal`) so that a row rewritten in place (UPDATE) does not keep the sealed totals
event_digests_table = sa.Table(
    "bastion_event_digests",
    metadata,
    sa.Column("w", sa.BigInteger, primary_key=True),
    sa.Column("digest", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
)
#: The columns a row's digest covers, in order (every column but the row id).
DIGEST_COLUMNS = (
    "ts", "kind", "identity", "client", "model", "action", "outcome", "status", "source", "severity",
    "attacks", "hour", "weekday", "audit_index", "details", "count",
)  # fmt: skip
_IDS_PER_QUERY = 10_000
_AUDIT_INDEX = sa.Index("ix_bastion_events_audit_index", events_table.c.audit_index)
# whether remote gateways' records lie in a hunt's window (bastion.hunt.sigma runs the rules twice only then)
_SOURCE_INDEX = sa.Index("ix_bastion_events_source", events_table.c.source, events_table.c.ts)


def _add_count_column(engine: Engine) -> None:
    """Add the ``count`` column (1 for every row) to a store created before it existed."""
    columns = {c["name"] for c in sa.inspect(engine).get_columns(TABLE)}
    if "count" not in columns:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {TABLE} ADD COLUMN count INTEGER NOT NULL DEFAULT 1"))


def default_events_url(home: Path) -> str:
    return os.environ.get(EVENTS_URL_ENV) or f"sqlite:///{home / 'events.db'}"


def row_of(event: Event) -> dict[str, Any]:
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
        "count": event.count,
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
        count=int(row._mapping["count"]),  # not row.count: a Row is a tuple
    )


class EventStore:
    """Append and read events; ``url`` is a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        try:
            metadata.create_all(self.engine)
            _AUDIT_INDEX.create(self.engine, checkfirst=True)  # stores made before it had the index
            _SOURCE_INDEX.create(self.engine, checkfirst=True)
            _add_count_column(self.engine)  # stores made before events had a count
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

    def append(
        self,
        events: Iterable[Event],
        *,
        cursor: tuple[str, int] | None = None,
        seal: bytes | None = None,
        digests: dict[int, tuple[int, int]] | None = None,
    ) -> int:
        """Insert events (and move ``cursor`` = (name, position), with its ``seal``, and set the hourly
        ``digests`` {w: (digest, rows)}) in one transaction; returns the count."""
        rows = [row_of(e) for e in events]
        counts: Counter[tuple[str, str, int, str, str]] = Counter()
        models: set[tuple[str, str, int, str]] = set()
        for r in rows:
            w = int(r["ts"] // WINDOW_S)
            counts[(r["identity"], r["client"], w, r["kind"], r["outcome"])] += int(r["count"])
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
            for w, (digest, n) in (digests or {}).items():
                conn.execute(sa.delete(event_digests_table).where(event_digests_table.c.w == w))
                conn.execute(sa.insert(event_digests_table).values(w=w, digest=digest, rows=n))
            if cursor is not None:
                name, position = cursor
                done = conn.execute(
                    sa.update(cursors_table).where(cursors_table.c.name == name).values(position=position)
                )
                if done.rowcount != 1:
                    conn.execute(sa.insert(cursors_table).values(name=name, position=position))
                if seal is not None:
                    conn.execute(sa.delete(cursor_seals_table).where(cursor_seals_table.c.name == name))
                    conn.execute(
                        sa.insert(cursor_seals_table).values(name=name, position=position, seal=seal)
                    )
        return len(rows)

    def cursor_seal(self, name: str) -> tuple[int, bytes] | None:
        """The (position, seal) stored with a collector's cursor, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(cursor_seals_table.c.position, cursor_seals_table.c.seal).where(
                    cursor_seals_table.c.name == name
                )
            ).first()
        return None if row is None else (int(row.position), bytes(row.seal))

    def max_audit_index(self) -> int | None:
        """The highest audit-log index any stored event came from (None: none did)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(events_table.c.audit_index))).scalar()
        return None if value is None else int(value)

    def rewind(self, name: str, position: int) -> int:
        """Drop the events derived from audit entries ``position`` onwards and every event derived from no
        audit entry (``audit_index`` NULL: no collector writes one, so it was written into the store by hand),
        rebuild the hourly rollup from the events left, and set cursor ``name`` to ``position`` (unsealed);
        returns the events dropped.

        What the collector does when its cursor cannot be trusted: re-collecting is then idempotent, and a
        forged row cannot survive the rewind to be sealed in with the re-collected ones."""
        w = sa.cast(sa.func.floor(events_table.c.ts / WINDOW_S), sa.BigInteger)
        e = events_table.c
        with self.engine.begin() as conn:
            dropped = conn.execute(
                sa.delete(events_table).where(sa.or_(e.audit_index >= position, e.audit_index.is_(None)))
            ).rowcount
            conn.execute(sa.delete(rollup_table))
            conn.execute(sa.delete(window_models_table))
            conn.execute(sa.delete(event_digests_table))  # the collector's next check rewinds what is left
            conn.execute(
                sa.insert(rollup_table).from_select(
                    ["identity", "client", "w", "kind", "outcome", "n"],
                    sa.select(e.identity, e.client, w, e.kind, e.outcome, sa.func.sum(e["count"])).group_by(
                        e.identity, e.client, w, e.kind, e.outcome
                    ),
                )
            )
            conn.execute(
                sa.insert(window_models_table).from_select(
                    ["identity", "client", "w", "model"],
                    sa.select(e.identity, e.client, w, e.model).distinct(),
                )
            )
            conn.execute(sa.delete(cursor_seals_table).where(cursor_seals_table.c.name == name))
            conn.execute(sa.delete(cursors_table).where(cursors_table.c.name == name))
            conn.execute(sa.insert(cursors_table).values(name=name, position=position))
        return int(dropped or 0)

    def totals(self) -> tuple[int, int, int, int]:
        """(rows, summed count, smallest count, the rollup's summed count) of the whole store: what the
        collector's sealed cursor vouches for (:mod:`bastion.events.collect`)."""
        e = events_table.c
        with self.engine.connect() as conn:
            rows, total, least = conn.execute(
                sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(e["count"]), 0), sa.func.min(e["count"])
                )
            ).one()
            rolled = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(rollup_table.c.n), 0))).scalar()
        return int(rows or 0), int(total or 0), 1 if least is None else int(least), int(rolled or 0)

    def digests(self) -> dict[int, tuple[int, int]]:
        """The hourly digests {w: (digest, rows)} the collector keeps (:mod:`bastion.events.rowseal`)."""
        t = event_digests_table.c
        with self.engine.connect() as conn:
            return {
                int(r.w): (int(r.digest), int(r.rows)) for r in conn.execute(sa.select(t.w, t.digest, t.rows))
            }

    def digest_rows(self, since_w: int) -> Iterable[tuple[int, tuple[Any, ...]]]:
        """(w, the row's :data:`DIGEST_COLUMNS` values) of every event in hours ``since_w`` onwards."""
        e = events_table.c
        query = sa.select(*(e[c] for c in DIGEST_COLUMNS)).where(e.ts >= since_w * WINDOW_S)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=20_000).execute(query):
                yield int(row[0] // WINDOW_S), tuple(row)

    def rollup_since(self, since_w: int) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
        """(the stored rollup, the rollup the events imply) for hours ``since_w`` onwards, and the same for
        the window models (as keys counted once): what the collector compares before trusting the store."""
        e, r, m = events_table.c, rollup_table.c, window_models_table.c
        w = sa.cast(sa.func.floor(e.ts / WINDOW_S), sa.BigInteger)
        after = e.ts >= since_w * WINDOW_S
        stored: Counter[tuple[Any, ...]] = Counter()
        derived: Counter[tuple[Any, ...]] = Counter()
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(r.identity, r.client, r.w, r.kind, r.outcome, r.n).where(r.w >= since_w)
            ):
                stored[("rollup", *row[:5])] += int(row[5])
            query = sa.select(e.identity, e.client, w, e.kind, e.outcome, sa.func.sum(e["count"]))
            for row in conn.execute(query.where(after).group_by(e.identity, e.client, w, e.kind, e.outcome)):
                derived[("rollup", *row[:5])] += int(row[5])
            for key in conn.execute(sa.select(m.identity, m.client, m.w, m.model).where(m.w >= since_w)):
                stored[("models", *key)] = 1
            for key in conn.execute(sa.select(e.identity, e.client, w, e.model).where(after).distinct()):
                derived[("models", *key)] = 1
        return stored, derived

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
        audit_index: int | None = None,
        audit_range: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events by time, id, or the audit entry (``audit_range``: entries lo..hi inclusive) they came from;
        ordered by time."""
        if ids is not None and len(ids) > _IDS_PER_QUERY:  # bound parameters per statement
            ids = list(ids)
            found = [
                e
                for start in range(0, len(ids), _IDS_PER_QUERY)
                for e in self.events(
                    since=since,
                    until=until,
                    ids=ids[start : start + _IDS_PER_QUERY],
                    after_id=after_id,
                    audit_index=audit_index,
                    audit_range=audit_range,
                )
            ]
            found.sort(key=lambda e: (e.time, e.id or 0))
            return found if limit is None else found[:limit]
        query = sa.select(events_table).order_by(events_table.c.ts, events_table.c.id)
        if since is not None:
            query = query.where(events_table.c.ts >= since)
        if until is not None:
            query = query.where(events_table.c.ts < until)
        if ids is not None:
            query = query.where(events_table.c.id.in_(list(ids)))
        if after_id is not None:
            query = query.where(events_table.c.id > after_id)
        if audit_index is not None:
            query = query.where(events_table.c.audit_index == audit_index)
        if audit_range is not None:
            query = query.where(events_table.c.audit_index.between(audit_range[0], audit_range[1]))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [event_from_row(r) for r in conn.execute(query)]

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Run one read-only SELECT generated by the hunting engine (never user text); a failure is one line
        without the SQL or its bound values."""
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params or {}))
        except sa.exc.DBAPIError as exc:
            raise ServiceError(f"a hunting query failed ({type(exc.orig).__name__})") from None


__all__ = [
    "DIGEST_COLUMNS",
    "EVENTS_URL_ENV",
    "WINDOW_S",
    "EventStore",
    "cursor_seals_table",
    "default_events_url",
    "event_digests_table",
    "event_from_row",
    "events_table",
    "rollup_table",
    "row_of",
    "window_models_table",
]
