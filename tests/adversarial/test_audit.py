"""The audit: runner, grading, policy gate, CLI (in process and as a subprocess), registry integration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bastion.adversarial.audit import AuditTarget, run_audit, worst
from bastion.adversarial.policy import check_policy, parse_policy
from bastion.cli import run
from bastion.errors import ConfigError, InvalidInput


@pytest.fixture(scope="module")
def demo_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """The full quick demo through the CLI, once per module: the README's own command line (seed 0 is the
    default), which the README walk (tests/test_readme_walk.py, DEDICATED) therefore only parses."""
    out = tmp_path_factory.mktemp("demo")
    code = run(["audit", "--demo", "--out", str(out / "r"), "--budget", "quick"])
    return code, out / "r"


@pytest.mark.slow
def test_demo_writes_json_and_html(demo_cli: tuple[int, Path]) -> None:
    code, out = demo_cli
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "bastion-audit" and report["budget"] == "quick"
    assert set(report["sections"]) == {"evasion", "membership", "extraction", "poisoning"}
    for family, sec in report["sections"].items():
        assert sec["status"] == "ok", family
        assert sec["parameters"] and sec["metrics"] and isinstance(sec["seed"], int)
        assert sec["grade"] in "ABCDF"
    ev = report["sections"]["evasion"]["metrics"]
    assert ev["robust_accuracy"] <= ev["robust_accuracy_pgd"] <= ev["clean_accuracy"]
    assert "squeezing_adaptive_evasion_rate" in ev  # the honest adaptive figure is in the report
    assert report["sections"]["poisoning"]["metrics"]["attack_success_rate"] > 0.8
    assert report["grade"] in "ABCDF" and len(report["reasons"]) == 4  # complete: a letter grade
    poison = report["sections"]["poisoning"]
    # attack success and detection are stated apart, in words, and a working attack is never an "A"
    assert "of inputs carrying the trigger, with no defence" in poison["attack"]
    assert "flags" in poison["defence"] or "no training-set detector" in poison["defence"]
    assert poison["grade"] != "A"
    html = (out / "report.html").read_text()
    assert "with the defence" in html and "carrying the trigger" in html
    assert html.count("data:image/png;base64,") >= 4  # accuracy vs ε, ROC, fidelity, backdoor scores
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_policy_parsing_fails_closed() -> None:
    with pytest.raises(ConfigError, match="empty"):
        parse_policy({})
    with pytest.raises(ConfigError, match="unknown section"):
        parse_policy({"vibes": {"x": {"min": 1}}})
    with pytest.raises(ConfigError, match="min and/or max"):
        parse_policy({"evasion": {"robust_accuracy": 0.3}})
    with pytest.raises(ConfigError, match="finite numbers"):
        parse_policy({"evasion": {"robust_accuracy": {"min": "high"}}})
    with pytest.raises(ConfigError, match="grade"):
        parse_policy({"overall": {"grade": {"min": "Z"}}})


def test_runner_policy_and_errors(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    target = AuditTarget(model=digits_model, x=digits.x_test[:120], y=digits.y_test[:120])
    report = run_audit(target=target, attacks=["evasion", "membership", "poisoning"], budget="quick", seed=1)
    assert report.sections["membership"].status == "skipped"  # no known training rows
    assert report.sections["poisoning"].status == "skipped"  # no training recipe
    assert report.grade == "incomplete"  # skipped and unrequested families are not graded as passed
    assert "not measured" in report.reasons[-1] and "extraction (not requested)" in report.reasons[-1]
    ok = parse_policy({"evasion": {"clean_accuracy": {"min": 0.5}}})
    assert check_policy(report, ok) == ()
    strict = parse_policy(
        {
            "evasion": {"robust_accuracy": {"min": 0.99}},
            "membership": {"auc": {"max": 0.6}},
            "overall": {"grade": {"min": "A"}},
        }
    )
    broken = {f"{v.family}.{v.metric}": v for v in check_policy(report, strict)}
    assert set(broken) == {"evasion.robust_accuracy", "membership.auc", "overall.grade"}
    assert "not measured" in str(broken["membership.auc"])  # fail closed on a skipped family
    assert worst(["B", "F", "A"]) == "F"
    with pytest.raises(InvalidInput, match="unknown attack"):
        run_audit(target=target, attacks=["evasion", "telepathy"])
    with pytest.raises(InvalidInput, match="budget"):
        run_audit(target=target, budget="infinite")
    with pytest.raises(InvalidInput, match="at least 20"):
        run_audit(target=AuditTarget(model=digits_model, x=digits.x_test[:5], y=digits.y_test[:5]))
    with pytest.raises(InvalidInput, match="NaN"):
        bad = digits.x_test[:50].copy()
        bad[3, 3] = np.nan
        run_audit(target=AuditTarget(model=digits_model, x=bad, y=digits.y_test[:50]))


def test_cli_policy_violation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "gate.toml"
    policy.write_text("[evasion]\nrobust_accuracy = { min = 0.99 }\n")
    code = run(
        [
            "audit",
            "--demo",
            "--attacks",
            "evasion",
            "--out",
            str(tmp_path / "o"),
            "--policy",
            str(policy),
            "--format",
            "json",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["violations"] and "evasion.robust_accuracy" in doc["violations"][0]
    assert "policy violation" in captured.err
    assert (tmp_path / "o" / "report.json").is_file()  # the report is written even when the gate fails


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "--out", str(tmp_path)]) == 2
    assert "either --demo or --model" in capsys.readouterr().err
    assert run(["audit", "--model", "x.pt", "--out", str(tmp_path)]) == 2
    empty = tmp_path / "gate.toml"
    empty.write_text("")
    assert run(["audit", "--demo", "--out", str(tmp_path), "--policy", str(empty)]) == 2
    assert "empty policy" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_subprocess_json(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "audit",
            "--demo",
            "--attacks",
            "extraction",
            "--out",
            str(tmp_path / "o"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["families"]["extraction"]["metrics"]["fidelity"] > 0.5
    assert Path(doc["report_html"]).is_file()


def test_project_audit_section_supplies_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gate.toml").write_text("[evasion]\nclean_accuracy = { min = 1.01 }\n")
    (home / "bastion.toml").write_text('[audit]\nbudget = "quick"\npolicy = "gate.toml"\n')
    code = run(
        [
            "audit",
            "--demo",
            "--attacks",
            "evasion",
            "--out",
            str(tmp_path / "o"),
            "--home",
            str(home),
            "--format",
            "json",
        ]
    )
    assert code == 1  # the project's policy applied without --policy
    assert "evasion.clean_accuracy" in json.loads(capsys.readouterr().out)["violations"][0]
