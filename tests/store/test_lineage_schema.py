"""Every lineage event bastion stores and exports validates against the OpenLineage 2-0-2 schema.

The schema is vendored in ``tests/schemas/openlineage/`` (see the README there for its source: transcribed
from the official client's generated model). Formats (uuid, date-time, uri) are validated too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import sqlalchemy as sa

from bastion.store.db import open_engine
from bastion.store.lineage import FILE_NAMESPACE, REGISTRY_NAMESPACE, LineageDataset, list_events, record_run

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "openlineage" / "OpenLineage-2-0-2.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema_rs.Draft202012Validator(SCHEMA, validate_formats=True)


def _errors(event: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(event)]


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    eng = open_engine(f"sqlite:///{tmp_path / 'lineage.db'}")
    yield eng
    eng.dispose()


def test_recorded_events_are_valid_openlineage(engine: Any) -> None:
    raw = LineageDataset(FILE_NAMESPACE, "/data/raw.csv", "sha256:" + "a" * 64)
    model = LineageDataset(REGISTRY_NAMESPACE, "fraud:2", "sha256:" + "c" * 64)
    record_run(engine, job="data.protect", inputs=[raw], outputs=[model], facets={"bastion": {"rows": 10}})
    record_run(engine, job="privacy.train", inputs=[model], event_type="START")
    events = list_events(engine)
    assert len(events) == 2
    for event in events:
        doc = event.to_openlineage()
        assert _errors(doc) == [], doc
    with engine.connect() as conn:  # the JSON as stored in the database, byte for byte
        stored = [json.loads(row[0]) for row in conn.execute(sa.text("SELECT event FROM lineage_events"))]
    assert stored and all(_errors(doc) == [] for doc in stored)


def test_the_schema_rejects_broken_events(engine: Any) -> None:
    """The validator has teeth: each required field or format bastion relies on is enforced."""
    record_run(engine, job="data.protect", outputs=[LineageDataset(FILE_NAMESPACE, "/x", None)])
    good = list_events(engine)[0].to_openlineage()
    assert _errors(good) == []
    broken = [
        {**good, "eventType": "DONE"},
        {**good, "eventTime": "yesterday"},
        {**good, "run": {"runId": "not-a-uuid"}},
        {k: v for k, v in good.items() if k != "schemaURL"},
        {**good, "job": {"name": "no namespace"}},
        {**good, "run": {**good["run"], "facets": {"bastion": {"rows": 1}}}},  # facet without _producer
    ]
    for doc in broken:
        assert _errors(doc), doc


def test_schema_url_points_at_the_run_event_definition(engine: Any) -> None:
    record_run(engine, job="data.protect")
    url = list_events(engine)[0].to_openlineage()["schemaURL"]
    base, _, pointer = url.partition("#")
    assert base == SCHEMA["$id"]
    node: Any = SCHEMA
    for part in pointer.strip("/").split("/"):
        node = node[part]  # KeyError when the pointer does not resolve in the 2-0-2 document
    assert node is SCHEMA["$defs"]["RunEvent"]
