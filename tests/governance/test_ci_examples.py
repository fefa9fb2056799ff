"""The shipped pre-commit hooks and the GitHub Actions example call commands that exist and work."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from bastion.cli import run

ROOT = Path(__file__).parents[2]


def test_pre_commit_hooks_run_real_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"bastion-check", "bastion-check-deploy"}
    for h in hooks.values():
        assert h["language"] == "python" and h["entry"].startswith("bastion ")
    bad = tmp_path / "train.py"
    bad.write_text("import torch\nm = torch.load(p)\n")
    good = tmp_path / "ok.py"
    good.write_text("x = 1\n")
    # pre-commit appends the staged file names to the entry
    assert run([*shlex.split(hooks["bastion-check"]["entry"])[1:], str(bad)]) == 1
    assert run([*shlex.split(hooks["bastion-check"]["entry"])[1:], str(good)]) == 0
    df = tmp_path / "Dockerfile"
    df.write_text("FROM python:3.11\n")
    assert run([*shlex.split(hooks["bastion-check-deploy"]["entry"])[1:], str(df)]) == 1


def test_github_actions_example_uploads_sarif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = yaml.safe_load((ROOT / "docs" / "examples" / "github-actions-bastion-check.yml").read_text())
    steps = wf["jobs"]["check"]["steps"]
    runs = [s["run"] for s in steps if "run" in s and s["run"].startswith("bastion ")]
    assert any("--format sarif" in r for r in runs)
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert upload["if"] == "always()"
    code_step = shlex.split(runs[0])
    assert code_step[:2] == ["bastion", "check"]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("import pickle\npickle.loads(b)\n")
    out = tmp_path / "bastion-code.sarif"
    assert run(["check", str(src), "--format", "sarif", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "BST-C001"
