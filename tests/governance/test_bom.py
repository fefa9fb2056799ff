"""``bastion bom``: a CycloneDX 1.6 ML-BOM with a model card, valid against the 1.6 schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from bastion.cli import run

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def test_bom_fields_and_schema(project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = project.push_model("fraud")
    card = tmp_path / "card.yaml"
    card.write_text(
        "users: [fraud analysts]\nuse_cases: [card-not-present scoring]\n"
        "ethical_considerations: [a false positive blocks a payment]\nfairness: [new customers]\n"
        "limitations: [trained on one bank's 2025 data]\ntask: classification\n"
    )
    out = tmp_path / "bom.json"
    assert run(["bom", ref, "--card", str(card), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert VALIDATOR.validate_str(json.dumps(doc)) is None
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    comp = doc["metadata"]["component"]
    assert comp["type"] == "machine-learning-model" and comp["name"] == "fraud" and comp["version"] == "1"
    assert comp["hashes"] == [{"alg": "SHA-256", "content": project.vault.show(ref).manifest_digest}]
    (sig,) = comp["externalReferences"]
    assert sig["type"] == "digital-signature" and sig["url"] == "bastion://registry/fraud/1/model.sig"
    assert {"name": "bastion:classification", "value": "confidential"} in comp["properties"]
    mc = comp["modelCard"]
    assert mc["modelParameters"]["task"] == "classification"
    assert mc["modelParameters"]["architectureFamily"] == "mlp"
    (ds_ref,) = mc["modelParameters"]["datasets"]
    data = next(c for c in doc["components"] if c["bom-ref"] == ds_ref["ref"])
    assert data["type"] == "data" and data["name"] == "train_clean.csv"
    assert data["data"][0]["classification"] in ("public", "internal", "confidential")
    metrics = {m["type"]: m["value"] for m in mc["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics == {
        "accuracy": "0.95",
        "robust-accuracy": "0.55",
        "membership-inference-auc": "0.52",
        "membership-inference-tpr-at-0.1%-fpr": "0.01",
        "extraction-fidelity": "0.62",
        "dp-epsilon": "2",
    }
    cons = mc["considerations"]
    assert cons["users"] == ["fraud analysts"] and cons["useCases"] == ["card-not-present scoring"]
    assert cons["ethicalConsiderations"] == [{"name": "a false positive blocks a payment"}]
    assert cons["fairnessAssessments"] == [{"groupAtRisk": "new customers"}]
    assert cons["technicalLimitations"][0] == "trained on one bank's 2025 data"
    commitment = project.commitment(ref)  # logged by log_commitment
    assert {"name": "bastion:watermark-commitment", "value": commitment} in mc["properties"]
    libs = {c["name"].lower(): c for c in doc["components"] if c["type"] == "library"}
    assert libs["cyclonedx-python-lib"]["purl"].startswith("pkg:pypi/cyclonedx-python-lib@")
    # the validator is not a rubber stamp: a broken model card is refused
    broken = copy.deepcopy(doc)
    broken["metadata"]["component"]["modelCard"]["modelParameters"]["approach"]["type"] = "telepathy"
    assert VALIDATOR.validate_str(json.dumps(broken)) is not None


def test_bom_refuses_datasets_and_unknown_card_keys(
    project: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = project.vault.push(project.clean_csv, name="train", kind="dataset")
    assert run(["bom", ds.ref]) == 2
    assert "an ML-BOM describes a model" in capsys.readouterr().err
    ref = project.push_model("fraud")
    card = tmp_path / "card.yaml"
    card.write_text("userz: [typo]\n")
    assert run(["bom", ref, "--card", str(card)]) == 2
    assert "unknown key(s) userz" in capsys.readouterr().err
