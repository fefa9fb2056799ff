"""``bastion threat-model``: ATLAS IDs only from ATLAS.yaml, OWASP IDs, and measured control status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.cli import run
from bastion.errors import InvalidInput
from bastion.governance.threat import CATALOGUE, OWASP_LLM_2025, OWASP_ML_2023, atlas_techniques, parse_system

REFERENCE = Path(__file__).parents[2] / "src" / "bastion" / "governance" / "data" / "ATLAS.yaml"


def test_catalogue_cites_only_atlas_ids_present_in_the_file() -> None:
    doc = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    assert doc["version"] == "5.6.0"
    ids = {t["id"] for m in doc["matrices"] for t in m["techniques"]}
    assert set(atlas_techniques()) == ids
    for t in CATALOGUE:
        assert set(t.atlas) <= ids, t.id
        assert set(t.owasp_ml) <= set(OWASP_ML_2023) and set(t.owasp_llm) <= set(OWASP_LLM_2025)


def _system(tmp_path: Path, **over: Any) -> Path:
    doc = {
        "name": "fraud-scoring",
        "assets": ["fraud"],
        "data_classes": ["pii"],
        "exposure": ["public_api"],
        "training": {"third_party_data": True},
        "generative": False,
    } | over
    p = tmp_path / "SYSTEM.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_threat_model_json_with_measured_status(
    project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project.push_model("fraud")
    assert run(["threat-model", str(_system(tmp_path)), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["system"] == "fraud-scoring" and doc["atlas_version"] == "5.6.0" and doc["assets"] == ["fraud"]
    threats = {t["id"]: t for t in doc["threats"]}
    names = atlas_techniques()
    for t in doc["threats"]:
        assert all(a["name"] == names[a["id"]] for a in t["atlas"])
        assert t["status"] in ("measured", "weak", "untested", "not-covered")
    assert not any(t["owasp_llm"] and t["id"] in ("TM-11", "TM-12") for t in doc["threats"])  # not generative
    ev = threats["TM-01"]
    assert ev["atlas"][0] == {"id": "AML.T0015", "name": "Evade AI Model"}
    assert ev["owasp_ml"] == [{"id": "ML01:2023", "name": "Input Manipulation Attack"}]
    assert ev["likelihood"] == "high" and ev["status"] == "measured"
    assert ev["detail"] == "last audit robust accuracy 0.55; no input guard"
    mia = threats["TM-02"]
    assert mia["status"] == "measured" and mia["detail"] == "ε=2; last audit MIA TPR@0.1%FPR 0.01"
    ext = threats["TM-04"]
    assert (
        ext["status"] == "weak"
        and "extraction monitor off" in ext["detail"]
        and "fidelity 0.62" in ext["detail"]
    )
    assert threats["TM-18"]["status"] == "untested"  # no rate limit configured: it stands out
    assert doc["counts"]["untested"] >= 1 and sum(doc["counts"].values()) == len(doc["threats"])


def test_untested_controls_stand_out_without_an_audit(
    project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project.push_model("fraud", audit={}, epsilon=None)
    system = _system(tmp_path, generative=True, agents=True, exposure=["edge"])
    assert run(["threat-model", str(system), "--format", "json"]) == 0
    threats = {t["id"]: t for t in json.loads(capsys.readouterr().out)["threats"]}
    assert threats["TM-01"]["status"] == "untested" and threats["TM-01"]["detail"].startswith(
        "no adversarial audit"
    )
    assert threats["TM-02"]["status"] == "untested"
    assert threats["TM-11"]["owasp_llm"] == [{"id": "LLM01:2025", "name": "Prompt Injection"}]
    assert threats["TM-15"]["status"] == "not-covered"
    assert "TM-05" in threats  # edge exposure: file theft
    assert run(["threat-model", str(system), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert (
        "| TM-01 | Evasion with adversarial inputs | AML.T0015 Evade AI Model" in md and "**UNTESTED**" in md
    )
    assert run(["threat-model", str(system), "--format", "html"]) == 0
    assert "<td>AML.T0051 LLM Prompt Injection</td>" in capsys.readouterr().out.replace("<br>", "</td><td>")


def test_from_inventory_writes_a_valid_starting_point(
    project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project.push_model("fraud", data=project.pii_csv)
    out = tmp_path / "START.yaml"
    assert run(["threat-model", "--from-inventory", "fraud", "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["assets"] == ["fraud"] and doc["exposure"] == ["internal_batch"]
    assert doc["data_classes"][-2:] == ["confidential", "pii"] and doc["training"]["dp"] is True
    assert parse_system(doc).name == "fraud"
    assert run(["threat-model", str(out), "--format", "json"]) == 0


def test_bad_system_files(tmp_path: Path, project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput, match="unknown key"):
        parse_system({"name": "x", "exposure": ["edge"], "exposur": []})
    with pytest.raises(InvalidInput, match="not one of"):
        parse_system({"name": "x", "exposure": ["internet"]})
    assert run(["threat-model", str(_system(tmp_path, assets=["nosuch"]))]) == 2
    assert run(["threat-model"]) == 2
    assert "Traceback" not in capsys.readouterr().err
