"""OpenLineage run events: recording, the JSON shape, and the walk from a model back to raw sources."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.errors import InvalidInput, NotFound
from bastion.store.db import open_engine
from bastion.store.lineage import (
    FILE_NAMESPACE,
    REGISTRY_NAMESPACE,
    LineageDataset,
    RunEvent,
    lineage_graph,
    list_events,
    record_run,
    render_tree,
    resolve_dataset,
)

RAW = LineageDataset(FILE_NAMESPACE, "/data/raw.csv", "sha256:" + "a" * 64)
PROT = LineageDataset(FILE_NAMESPACE, "/data/prot.csv", "sha256:" + "b" * 64)
DS1 = LineageDataset(REGISTRY_NAMESPACE, "customers:1", "sha256:" + "b" * 64)
MODEL = LineageDataset(REGISTRY_NAMESPACE, "fraud:2", "sha256:" + "c" * 64)


def _flow(engine) -> None:
    record_run(engine, job="data.protect", inputs=[RAW], outputs=[PROT], facets={"bastion": {"rows": 10}})
    record_run(engine, job="registry.push", inputs=[PROT], outputs=[DS1])
    record_run(engine, job="privacy.train", inputs=[DS1], outputs=[MODEL])
    record_run(engine, job="audit.run", inputs=[MODEL])  # reads the model; produces nothing upstream


@pytest.fixture
def engine(tmp_path: Path):
    eng = open_engine(f"sqlite:///{tmp_path / 'l.db'}")
    yield eng
    eng.dispose()


def test_event_shape_is_openlineage(engine) -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ev = record_run(engine, job="data.scan", inputs=[RAW], facets={"bastion_scan": {"rows": 3}}, now=now)
    doc = ev.to_openlineage()
    assert doc["eventType"] == "COMPLETE" and doc["eventTime"] == "2026-01-02T03:04:05Z"
    assert uuid.UUID(doc["run"]["runId"]) and doc["job"] == {
        "namespace": "bastion",
        "name": "data.scan",
        "facets": {},
    }
    assert doc["producer"].startswith("https://") and doc["schemaURL"].endswith("#/$defs/RunEvent")
    facet = doc["inputs"][0]["facets"]["contentDigest"]
    assert facet["algorithm"] == "sha256" and facet["digest"] == "a" * 64 and "_producer" in facet
    assert doc["run"]["facets"]["bastion_scan"]["rows"] == 3
    assert RunEvent.from_openlineage(json.loads(json.dumps(doc))) == ev
    assert list_events(engine) == [ev]


def test_graph_walks_from_model_to_raw_source(engine) -> None:
    _flow(engine)
    graph = lineage_graph(engine, root=MODEL)
    assert [e.job_name for e in graph.events] == ["privacy.train", "registry.push", "data.protect"]
    assert graph.sources == (RAW,)
    tree = render_tree(graph)
    assert tree.index("privacy.train") < tree.index("registry.push") < tree.index("data.protect")
    assert "[raw source]" in tree and "audit.run" not in tree


def test_digest_links_a_renamed_file(engine) -> None:
    moved = LineageDataset(FILE_NAMESPACE, "/elsewhere/copy.csv", PROT.digest)
    record_run(engine, job="data.protect", inputs=[RAW], outputs=[PROT])
    record_run(engine, job="registry.push", inputs=[moved], outputs=[DS1])
    graph = lineage_graph(engine, root=DS1)
    assert [e.job_name for e in graph.events] == ["registry.push", "data.protect"]


def test_resolve_latest_version_and_errors(engine) -> None:
    _flow(engine)
    record_run(
        engine, job="privacy.train", inputs=[DS1], outputs=[LineageDataset(REGISTRY_NAMESPACE, "fraud:10")]
    )
    assert resolve_dataset(engine, "fraud").name == "fraud:10"
    assert resolve_dataset(engine, "fraud:2") == MODEL
    with pytest.raises(NotFound):
        resolve_dataset(engine, "unknown")
    with pytest.raises(NotFound):
        lineage_graph(engine, root=RAW)  # nothing produced the raw file
    with pytest.raises(InvalidInput):
        record_run(engine, job="")
    with pytest.raises(InvalidInput):
        record_run(engine, job="x", event_type="DONE")
    with pytest.raises(InvalidInput):
        record_run(engine, job="x", inputs=[{"namespace": "", "name": "a"}])
    with pytest.raises(InvalidInput):
        record_run(engine, job="x", facets={"f": {"bad": object()}})


def test_cycles_terminate(engine) -> None:
    a = LineageDataset("ns", "a")
    b = LineageDataset("ns", "b")
    record_run(engine, job="ab", inputs=[a], outputs=[b])
    record_run(engine, job="ba", inputs=[b], outputs=[a])
    graph = lineage_graph(engine, root=a)
    assert {e.job_name for e in graph.events} == {"ab", "ba"}
    assert render_tree(graph)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    schema = f"lineage_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    eng = open_engine(url.render_as_string(hide_password=False))
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_postgres(pg_engine) -> None:
    _flow(pg_engine)
    graph = lineage_graph(pg_engine, root=resolve_dataset(pg_engine, "fraud"))
    assert graph.sources == (RAW,)
