"""Lineage: OpenLineage-compatible run events in the metadata database, and the walk back to raw sources.

Every step that reads and writes data (scan, protect, push, training, audit) calls :func:`record_run` once
with the datasets it read and wrote, each with a content digest. Events follow the OpenLineage 2-0-2
``RunEvent`` shape (``eventType``, ``eventTime``, ``run.runId``, ``job {namespace, name}``, ``inputs`` /
``outputs`` with facets, ``producer``, ``schemaURL``); the digest travels in a custom ``contentDigest``
dataset facet. :func:`lineage_graph` walks from a dataset (typically a registry model version) back through
the runs that produced it to the raw sources, linking datasets by name and by content digest (so a file that
was moved or pushed under another name still connects).

Dataset naming: files use namespace ``file`` and the absolute path; registry artifacts use
:data:`REGISTRY_NAMESPACE` and ``NAME:VERSION``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion import __version__
from bastion.errors import InvalidInput, NotFound, ServiceError
from bastion.store.db import Base, utcnow

PRODUCER = f"https://github.com/bastion-ml/bastion/tree/v{__version__}"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_SCHEMA_URL = "https://github.com/bastion-ml/bastion/blob/main/docs/internals.md#lineage"
DEFAULT_NAMESPACE = "bastion"
FILE_NAMESPACE = "file"
REGISTRY_NAMESPACE = "bastion-registry"
EVENT_TYPES: tuple[str, ...] = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER")

lineage_events = sa.Table(
    "lineage_events",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), nullable=False, index=True),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("job_namespace", sa.String(255), nullable=False),
    sa.Column("job_name", sa.String(255), nullable=False),
    sa.Column("event", sa.Text, nullable=False),
)
lineage_datasets = sa.Table(
    "lineage_datasets",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("lineage_events.id"), nullable=False, index=True),
    sa.Column("direction", sa.String(6), nullable=False),  # input | output
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("name", sa.String(1024), nullable=False),
    sa.Column("digest", sa.String(200), nullable=True, index=True),
    sa.Index("ix_lineage_datasets_ns_name", "namespace", "name"),
)


@dataclass(frozen=True)
class LineageDataset:
    """A dataset a run read or wrote. ``digest`` is ``"sha256:<hex>"`` (or another ``algo:hex``)."""

    namespace: str
    name: str
    digest: str | None = None

    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def to_openlineage(self) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if self.digest:
            algo, _, value = self.digest.partition(":")
            facets["contentDigest"] = {
                "_producer": PRODUCER,
                "_schemaURL": FACET_SCHEMA_URL,
                "algorithm": algo if value else "sha256",
                "digest": value or algo,
            }
        return {"namespace": self.namespace, "name": self.name, "facets": facets}

    @classmethod
    def from_openlineage(cls, data: Mapping[str, Any]) -> LineageDataset:
        facet = (data.get("facets") or {}).get("contentDigest")
        digest = f"{facet['algorithm']}:{facet['digest']}" if facet else None
        return cls(namespace=str(data["namespace"]), name=str(data["name"]), digest=digest)


@dataclass(frozen=True)
class RunEvent:
    """One recorded run: what ran, when, what it read and what it wrote."""

    run_id: str
    event_type: str
    event_time: dt.datetime
    job_namespace: str
    job_name: str
    inputs: tuple[LineageDataset, ...]
    outputs: tuple[LineageDataset, ...]
    facets: Mapping[str, Any] = field(default_factory=dict)

    def to_openlineage(self) -> dict[str, Any]:
        """The event as OpenLineage JSON (a ``RunEvent`` of spec 2-0-2)."""
        run_facets = {
            name: {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA_URL, **dict(value)}
            for name, value in self.facets.items()
        }
        return {
            "eventType": self.event_type,
            "eventTime": self.event_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": self.run_id, "facets": run_facets},
            "job": {"namespace": self.job_namespace, "name": self.job_name, "facets": {}},
            "inputs": [d.to_openlineage() for d in self.inputs],
            "outputs": [d.to_openlineage() for d in self.outputs],
        }

    @classmethod
    def from_openlineage(cls, data: Mapping[str, Any]) -> RunEvent:
        facets = {
            k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")}
            for k, v in (data["run"].get("facets") or {}).items()
        }
        return cls(
            run_id=str(data["run"]["runId"]),
            event_type=str(data["eventType"]),
            event_time=dt.datetime.fromisoformat(str(data["eventTime"]).replace("Z", "+00:00")),
            job_namespace=str(data["job"]["namespace"]),
            job_name=str(data["job"]["name"]),
            inputs=tuple(LineageDataset.from_openlineage(d) for d in data.get("inputs", [])),
            outputs=tuple(LineageDataset.from_openlineage(d) for d in data.get("outputs", [])),
            facets=facets,
        )


_READY: set[str] = set()


def ensure_lineage_tables(engine: Engine) -> None:
    """Create the lineage tables when missing (safe to call repeatedly)."""
    key = f"{id(engine)}:{engine.url}"
    if key in _READY:
        return
    try:
        Base.metadata.create_all(engine, tables=[lineage_events, lineage_datasets])
    except sa.exc.OperationalError as exc:
        raise ServiceError(f"metadata database unavailable: {exc.orig}") from exc
    _READY.add(key)


def _as_dataset(item: LineageDataset | Mapping[str, Any]) -> LineageDataset:
    if isinstance(item, LineageDataset):
        ds = item
    else:
        ds = LineageDataset(
            namespace=str(item["namespace"]), name=str(item["name"]), digest=item.get("digest")
        )
    if not ds.namespace or not ds.name:
        raise InvalidInput("a lineage dataset needs a namespace and a name")
    return ds


def record_run(
    engine: Engine,
    *,
    job: str,
    inputs: Sequence[LineageDataset | Mapping[str, Any]] = (),
    outputs: Sequence[LineageDataset | Mapping[str, Any]] = (),
    facets: Mapping[str, Mapping[str, Any]] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    event_type: str = "COMPLETE",
    run_id: str | None = None,
    now: dt.datetime | None = None,
) -> RunEvent:
    """Store one OpenLineage run event for ``job`` (e.g. ``"data.protect"``, ``"privacy.train"``).

    ``facets`` are run facets (name -> JSON object), e.g. ``{"bastion": {"rows": 1000}}``. Never put raw
    data values or secrets in them.
    """
    if not job:
        raise InvalidInput("a lineage run needs a job name")
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"eventType must be one of {', '.join(EVENT_TYPES)}")
    event = RunEvent(
        run_id=run_id or str(uuid.uuid4()),
        event_type=event_type,
        event_time=now or utcnow(),
        job_namespace=namespace,
        job_name=job,
        inputs=tuple(_as_dataset(d) for d in inputs),
        outputs=tuple(_as_dataset(d) for d in outputs),
        facets={str(k): dict(v) for k, v in (facets or {}).items()},
    )
    try:
        body = json.dumps(event.to_openlineage(), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("lineage facets must be JSON-serialisable") from exc
    ensure_lineage_tables(engine)
    with engine.begin() as conn:
        event_id = conn.execute(
            sa.insert(lineage_events).values(
                run_id=event.run_id,
                event_type=event.event_type,
                event_time=event.event_time,
                job_namespace=event.job_namespace,
                job_name=event.job_name,
                event=body,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        rows = [
            {
                "event_id": event_id,
                "direction": direction,
                "namespace": d.namespace,
                "name": d.name,
                "digest": d.digest,
            }
            for direction, items in (("input", event.inputs), ("output", event.outputs))
            for d in items
        ]
        if rows:
            conn.execute(sa.insert(lineage_datasets), rows)
    return event


def list_events(engine: Engine, *, job: str | None = None) -> list[RunEvent]:
    """Every recorded event (optionally of one job), oldest first."""
    ensure_lineage_tables(engine)
    query = sa.select(lineage_events.c.event).order_by(lineage_events.c.id)
    if job is not None:
        query = query.where(lineage_events.c.job_name == job)
    with engine.connect() as conn:
        return [RunEvent.from_openlineage(json.loads(body)) for body in conn.execute(query).scalars()]


@dataclass(frozen=True)
class LineageGraph:
    """The runs upstream of ``root``: ``events`` in discovery order and the raw ``sources`` reached."""

    root: LineageDataset
    events: tuple[RunEvent, ...]
    sources: tuple[LineageDataset, ...]

    def producers(self, dataset: LineageDataset) -> list[RunEvent]:
        by_name = [e for e in self.events if _produces(e, dataset, by_digest=False)]
        return by_name or [e for e in self.events if _produces(e, dataset)]

    def to_openlineage(self) -> list[dict[str, Any]]:
        return [e.to_openlineage() for e in self.events]


def _produces(event: RunEvent, ds: LineageDataset, *, by_digest: bool = True) -> bool:
    """The run wrote ``ds`` (same name, or same content) and did not merely read it."""
    if any(i.key() == ds.key() for i in event.inputs):
        return False
    return any(
        o.key() == ds.key() or bool(by_digest and ds.digest and o.digest == ds.digest) for o in event.outputs
    )


def _producing_events(conn: sa.Connection, ds: LineageDataset) -> list[tuple[int, RunEvent]]:
    """Runs that wrote ``ds`` by name; only when there are none, runs that wrote the same content."""
    by_name = sa.and_(lineage_datasets.c.namespace == ds.namespace, lineage_datasets.c.name == ds.name)
    conditions = [by_name] + ([lineage_datasets.c.digest == ds.digest] if ds.digest else [])
    for cond in conditions:
        query = (
            sa.select(lineage_events.c.id, lineage_events.c.event)
            .join(lineage_datasets, lineage_datasets.c.event_id == lineage_events.c.id)
            .where(lineage_datasets.c.direction == "output", cond)
            .distinct()
            .order_by(lineage_events.c.id)
        )
        found = [(row.id, RunEvent.from_openlineage(json.loads(row.event))) for row in conn.execute(query)]
        found = [(i, e) for i, e in found if _produces(e, ds)]
        if found:
            return found
    return []


def resolve_dataset(engine: Engine, ref: str, *, namespace: str = REGISTRY_NAMESPACE) -> LineageDataset:
    """``NAME:VERSION`` as recorded, or ``NAME`` -> its highest recorded version."""
    ensure_lineage_tables(engine)
    with engine.connect() as conn:
        names = conn.execute(
            sa.select(lineage_datasets.c.name, lineage_datasets.c.digest)
            .where(lineage_datasets.c.namespace == namespace)
            .where(sa.or_(lineage_datasets.c.name == ref, lineage_datasets.c.name.like(ref + ":%")))
            .order_by(lineage_datasets.c.id)
        ).all()
    exact = [r for r in names if r.name == ref]
    if exact:
        return LineageDataset(namespace, ref, exact[-1].digest)
    versions = []
    for r in names:
        tail = r.name[len(ref) + 1 :]
        if tail.isdigit():
            versions.append((int(tail), r))
    if not versions:
        raise NotFound(f"no lineage recorded for {ref}")
    _, best = max(versions, key=lambda v: v[0])
    return LineageDataset(namespace, best.name, best.digest)


def lineage_graph(engine: Engine, *, root: LineageDataset, max_depth: int = 50) -> LineageGraph:
    """Walk from ``root`` back through the runs that produced it, to datasets nothing produced."""
    ensure_lineage_tables(engine)
    seen_events: dict[int, RunEvent] = {}
    seen_ds: set[tuple[str, str, str | None]] = set()
    sources: list[LineageDataset] = []
    frontier: list[LineageDataset] = [root]
    depth = 0
    with engine.connect() as conn:
        while frontier and depth <= max_depth:
            nxt: list[LineageDataset] = []
            for ds in frontier:
                marker = (ds.namespace, ds.name, ds.digest)
                if marker in seen_ds:
                    continue
                seen_ds.add(marker)
                producers = [(i, e) for i, e in _producing_events(conn, ds) if i not in seen_events]
                already = any(_produces(e, ds) for e in seen_events.values())
                if not producers and not already and ds != root:
                    sources.append(ds)
                for i, e in producers:
                    seen_events[i] = e
                    nxt.extend(e.inputs)
            frontier = nxt
            depth += 1
    if not seen_events:
        raise NotFound(f"no run produced {root.namespace}/{root.name}")
    return LineageGraph(root=root, events=tuple(seen_events.values()), sources=tuple(sources))


def render_tree(graph: LineageGraph) -> str:
    """The graph as an indented text tree from the root back to its sources."""
    lines: list[str] = []

    def label(ds: LineageDataset) -> str:
        digest = f"  {ds.digest[:19]}…" if ds.digest else ""
        return f"{ds.name} ({ds.namespace}){digest}"

    def walk(ds: LineageDataset, prefix: str, path: Iterable[tuple[str, str]]) -> None:
        producers = graph.producers(ds)
        if not producers:
            lines.append(f"{prefix}   [raw source]")
            return
        for i, ev in enumerate(producers):
            last = i == len(producers) - 1
            lines.append(
                f"{prefix}{'└─' if last else '├─'} {ev.job_name}  run {ev.run_id[:8]}  "
                f"{ev.event_time:%Y-%m-%d %H:%M}"
            )
            sub = prefix + ("   " if last else "│  ")
            for j, inp in enumerate(ev.inputs):
                if inp.key() in path:
                    continue
                inner_last = j == len(ev.inputs) - 1
                lines.append(f"{sub}{'└─' if inner_last else '├─'} {label(inp)}")
                walk(inp, sub + ("   " if inner_last else "│  "), [*path, inp.key()])

    lines.append(label(graph.root))
    walk(graph.root, "", [graph.root.key()])
    return "\n".join(lines)


__all__ = [
    "DEFAULT_NAMESPACE",
    "FILE_NAMESPACE",
    "REGISTRY_NAMESPACE",
    "LineageDataset",
    "LineageGraph",
    "RunEvent",
    "ensure_lineage_tables",
    "lineage_graph",
    "list_events",
    "record_run",
    "render_tree",
    "resolve_dataset",
]
