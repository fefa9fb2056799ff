"""``bastion scan --format sarif`` and :func:`bastion.scan.to_sarif` validate against the OASIS SARIF 2.1.0
JSON schema (vendored in ``tests/schemas/sarif-2.1.0/`` from ``../shared/reference/sarif/``, with its
licence)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np

from bastion.cli import run

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "sarif-2.1.0" / "sarif-schema-2.1.0.json"
VALIDATOR = jsonschema_rs.Draft4Validator(
    json.loads(SCHEMA_PATH.read_text(encoding="utf-8")), validate_formats=True
)


def _errors(doc: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_scan_sarif_is_schema_valid(craft, write, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    payload = next(p for p in craft.PAYLOADS if p.name == "subprocess.Popen")
    bad = write("bad/evil.npy", craft.torch_zip(payload.pickle(2)))
    good = tmp_path / "good.npy"
    np.save(good, np.ones(3))
    junk = write("junk.bin", b"\x01\x02\x03\x04junk")
    assert run(["scan", str(bad), str(good), str(junk), "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"][0]["results"]  # findings with locations, rules and levels are in the document
    assert _errors(doc) == []
    assert run(["scan", str(good), "--format", "sarif"]) == 0  # a clean run: empty results
    clean = json.loads(capsys.readouterr().out)
    assert clean["runs"][0]["results"] == [] and _errors(clean) == []


def test_the_schema_rejects_broken_sarif(craft, write, capsys) -> None:  # type: ignore[no-untyped-def]
    payload = next(p for p in craft.PAYLOADS if p.name == "subprocess.Popen")
    bad = write("evil.pkl", payload.pickle(2))
    run(["scan", str(bad), "--format", "sarif"])
    doc = json.loads(capsys.readouterr().out)
    assert _errors(doc) == []
    result = doc["runs"][0]["results"][0]
    for broken in (
        {**doc, "version": "2.0.0"},
        {**doc, "runs": [{**doc["runs"][0], "results": [{**result, "level": "fatal"}]}]},
        {**doc, "runs": [{**doc["runs"][0], "results": [{**result, "message": {}}]}]},
        {k: v for k, v in doc.items() if k != "runs"},
    ):
        assert _errors(broken), broken
