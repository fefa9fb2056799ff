"""The policy gate: a compliant version passes, and each rule fails exactly on its seeded violation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.cli import run
from bastion.errors import ConfigError, PolicyViolation
from bastion.governance import check_versions, enforce
from bastion.governance.policy import parse_policy
from bastion.store.tables import versions

Project = Any


def ids(project: Project, ref: str, env: str | None = None) -> set[str]:
    report = check_versions(vault=project.vault, refs=[ref], env=env)
    return {i.rule.id for i in report.issues}


def test_compliant_version_passes(project: Project) -> None:
    ref = project.push_model("good")
    report = check_versions(vault=project.vault, refs=[ref])
    assert report.issues == () and report.ok and report.checked == (f"registry:{ref}",)


@pytest.mark.parametrize(
    ("rule", "seed"),
    [
        ("BST-P002", {"allow_unsafe": True}),
        ("BST-P003", {"epsilon": 20.0}),
        ("BST-P003", {"epsilon": None}),  # no DP at all: missing evidence fails
        ("BST-P004", {"audit": {"robust": 0.10}}),
        ("BST-P005", {"audit": {"tpr": 0.20}}),
        ("BST-P004", {"audit": None}),  # no audit yet (BST-P005 too)
        ("BST-P006", {"watermark": False}),
        ("BST-P007", {"data": "pii"}),
    ],
)
def test_each_rule_fails_exactly_on_its_violation(
    project: Project, audit_note: Any, rule: str, seed: dict[str, Any]
) -> None:
    no_audit = "audit" in seed and seed["audit"] is None
    if seed.get("data") == "pii":
        seed = {**seed, "data": project.pii_csv}
    if "audit" in seed:
        seed = {**seed, "audit": {} if no_audit else audit_note(**seed["audit"])}
    ref = project.push_model("seeded", **seed)
    found = ids(project, ref)
    assert rule in found
    expected = {"BST-P004", "BST-P005"} if no_audit else {rule}
    assert found == expected


def test_signature_rule_on_a_tampered_record(project: Project) -> None:
    ref = project.push_model("tampered")
    with project.vault.engine.begin() as conn:
        conn.execute(sa.update(versions).values(tags_json='{"owner": "mallory"}'))
    assert ids(project, ref) == {"BST-P001"}


def test_threat_model_older_than_the_version(project: Project) -> None:
    ref = project.push_model("stale")
    project.touch_threat_model(age_s=3600)
    assert ids(project, ref) == {"BST-P008"}
    (project.home / "SYSTEM.yaml").unlink()
    assert ids(project, ref) == {"BST-P008"}


def test_environment_without_policy_fails_closed(project: Project) -> None:
    ref = project.push_model("good")
    assert ids(project, ref, env="staging") == {"BST-P000"}


def test_unknown_or_empty_rules_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown rule"):
        parse_policy({"prod": {"max_epsilom": 1.0}}, home=tmp_path)
    with pytest.raises(ConfigError, match="non-empty"):
        parse_policy({"prod": {}}, home=tmp_path)
    with pytest.raises(ConfigError, match="true or false"):
        parse_policy({"prod": {"require_watermark": "yes"}}, home=tmp_path)


def test_enforce_raises_policy_violation(project: Project) -> None:
    good = project.push_model("good")
    enforce(vault=project.vault, ref=good, env="prod")
    bad = project.push_model("bad", epsilon=50.0)
    with pytest.raises(PolicyViolation, match="BST-P003"):
        enforce(vault=project.vault, ref=bad, env="prod")


def test_cli_check_json_field_by_field(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    good = project.push_model("good")
    assert run(["check", good, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "ok": True,
        "checked": [f"registry:{good}"],
        "issues": [],
        "counts": {"error": 0, "warning": 0, "note": 0},
    }
    bad = project.push_model("bad", epsilon=20.0)
    assert run(["check", bad, "--format", "json", "--env", "prod"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["checked"] == [f"registry:{bad}"]
    assert doc["counts"] == {"error": 1, "warning": 0, "note": 0}
    (issue,) = doc["issues"]
    assert issue["rule"] == "BST-P003" and issue["tool"] == "bastion" and issue["level"] == "error"
    assert issue["target"] == f"registry:{bad}" and issue["line"] is None
    assert issue["message"] == "ε = 20 > 8" and issue["evidence"] == {"epsilon": 20.0}
    # no target: every model version
    assert run(["check", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert sorted(doc["checked"]) == sorted([f"registry:{good}", f"registry:{bad}"])


def test_cli_check_unknown_ref_is_a_usage_error(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", "nosuch:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and os.sep not in err.split("\n")[0][:7]


def test_registry_promote_enforces_the_policy(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project.push_model("risky", epsilon=20.0)
    assert run(["registry", "promote", bad, "--to", "prod"]) == 1
    err = capsys.readouterr().err
    assert "fails the prod policy: BST-P003" in err and "Traceback" not in err
    assert project.vault.show(bad).env == "dev"  # nothing promoted
    good = project.push_model("fraud")
    assert run(["registry", "promote", "fraud", "--to", "prod", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["name"], doc["version"], doc["env"]) == ("fraud", 1, "prod") and good == "fraud:1"
    # no [policy.staging] table: staging promotion is not gated (projects without a policy keep working)
    assert run(["registry", "promote", bad, "--to", "staging"]) == 0
