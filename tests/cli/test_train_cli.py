"""``bastion train`` and ``bastion privacy …`` through the CLI entry point (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests._support.cli_home import project_home

from bastion.cli import run
from bastion.models.recipes import load_model
from bastion.privacy.training import ledger_key
from bastion.store.lineage import list_events
from bastion.vault import open_vault

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_home(tmp_path, monkeypatch)  # bastion's own inspectors: pushes are scanned


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_dp_train_without_a_project_writes_a_loadable_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m"
    args = [
        "train",
        "--dataset",
        "breast_cancer",
        "--dp",
        "--epsilon",
        "4",
        "--epochs",
        "3",
        "--batch-size",
        "64",
    ]
    assert run([*args, "--lr", "0.5", "--out", str(out), "--format", "json"]) == 0
    doc = _json(capsys)
    for key in ("accuracy", "epsilon", "delta", "noise_multiplier", "sample_rate", "steps"):
        assert doc[key] is not None
    assert doc["epsilon"] <= 4.0 and doc["delta"] == 1e-5 and doc["ledger_dataset"] is None
    loaded = load_model(out)
    assert loaded.metadata["epsilon"] == doc["epsilon"] and loaded.metadata["max_grad_norm"] == 1.0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    # issue 12 item 30: the non-cryptographic noise is stated next to ε in JSON, metadata and text
    assert doc["noise_source"]["cryptographic"] is False
    assert loaded.metadata["noise_source"] == doc["noise_source"]
    assert run([*args, "--lr", "0.5", "--out", str(tmp_path / "m2")]) == 0
    text = capsys.readouterr().out
    assert "ε=" in text and "non-cryptographic PRNG" in text


def test_train_spends_the_ledger_pushes_with_metadata_and_refuses_past_budget(home: Path, capsys) -> None:
    assert run(["privacy", "budget", "set", "breast_cancer", "--epsilon", "3", "--delta", "1e-4"]) == 0
    capsys.readouterr()
    base = ["train", "--dataset", "breast_cancer", "--dp", "--epsilon", "2", "--epochs", "3"]
    assert run([*base, "--push", "bc-dp", "--format", "json"]) == 0
    doc = _json(capsys)
    assert doc["pushed"] == {"name": "bc-dp", "version": 1, "env": "dev"}
    assert doc["budget"]["epsilon_spent"] == pytest.approx(doc["epsilon"])
    with open_vault(home=home) as vault:
        meta = vault.show("bc-dp:1").metadata
    for key in ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "sample_rate", "steps"):
        assert meta[key] == doc[key]
    assert run([*base, "--push", "bc-dp"]) == 2  # 2 + 2 > 3: refused before training
    err = capsys.readouterr().err
    assert err.startswith("error: privacy budget of 'breast_cancer' (sha256:") and "exhausted" in err
    assert "Traceback" not in err
    assert run(["train", "--dataset", "breast_cancer", "--out", str(home / "x")]) == 2  # non-private: refused
    assert "non-private" in capsys.readouterr().err
    assert run(["privacy", "budget", "show", "breast_cancer", "--format", "json"]) == 0
    shown = _json(capsys)
    assert [s["kind"] for s in shown["spends"]] == ["train"] and shown["epsilon_budget"] == 3.0
    assert run(["log", "verify"]) == 0
    with open_vault(home=home) as vault:
        (event,) = list_events(vault.engine, job="privacy.train")
        assert event.outputs[0].name == "bc-dp:1" and event.inputs[0].name == "breast_cancer"
        assert event.facets["bastion_train"]["epsilon"] == doc["epsilon"]
        actions = [e.action for e in vault.audit.entries()]
    assert actions.count("privacy:train") == 1 and "privacy.spend" in actions


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "mnist", "--out", "x"], "unknown dataset 'mnist'"),
        (["--dataset", "wine", "--dp", "--epsilon", "0", "--out", "x"], "epsilon"),
        (["--dataset", "wine", "--dp", "--epsilon", "-1", "--out", "x"], "epsilon"),
        (["--dataset", "wine", "--dp", "--epsilon", "1", "--delta", "1", "--out", "x"], "delta"),
        (["--dataset", "wine", "--dp", "--out", "x"], "--dp needs --epsilon"),
        (["--dataset", "wine", "--epsilon", "1", "--out", "x"], "--epsilon needs --dp"),
        (["--dataset", "wine"], "--out"),
        (["--data", "nope.csv", "--out", "x"], "--target"),
        (["--dataset", "wine", "--hidden", "a,b", "--out", "x"], "--hidden"),
    ],
)
def test_bad_train_input_is_one_clear_line(args: list[str], needle: str, capsys) -> None:
    assert run(["train", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) <= 2


def test_train_from_csv(tmp_path: Path, capsys) -> None:
    rows = ["f1,f2,label"] + [f"{i % 7},{(i * 3) % 5},{'a' if i % 7 > 3 else 'b'}" for i in range(120)]
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "m"
    assert (
        run(["train", "--data", str(csv_file), "--target", "label", "--out", str(out), "--format", "json"])
        == 0
    )
    doc = _json(capsys)
    assert doc["accuracy"] >= 0.9 and doc["epsilon"] is None
    assert load_model(out).config.n_classes == 2


def test_privacy_query_and_budget_cli(home: Path, capsys) -> None:
    assert run(["privacy", "budget", "set", "wine", "--epsilon", "2"]) == 0
    capsys.readouterr()
    q = [
        "privacy",
        "query",
        "mean",
        "--dataset",
        "wine",
        "--column",
        "alcohol",
        "--lower",
        "10",
        "--upper",
        "15",
    ]
    assert run([*q, "--epsilon", "1", "--format", "json"]) == 0
    doc = _json(capsys)
    assert 11.5 < doc["value"] < 14.5 and doc["epsilon"] <= 1.0  # true mean 13.0, noise sd ≈ 0.25
    assert (
        run(
            [
                "privacy",
                "query",
                "histogram",
                "--dataset",
                "wine",
                "--column",
                "target",
                "--lower",
                "0",
                "--upper",
                "3",
                "--bins",
                "3",
                "--epsilon",
                "0.4",
            ]
        )
        == 0
    )
    assert "[0, 1)" in capsys.readouterr().out
    assert run([*q, "--epsilon", "1"]) == 2
    assert "exhausted" in capsys.readouterr().err
    assert run(["privacy", "budget", "show"]) == 0
    assert "wine (sha256:" in (shown := capsys.readouterr().out) and "ε spent 1.4000 of 2" in shown
    assert (
        run(["privacy", "query", "sum", "--dataset", "wine", "--column", "alcohol", "--epsilon", "0.1"]) == 2
    )
    assert "bounds" in capsys.readouterr().err


def test_privacy_audit_cli_exit_codes(capsys) -> None:
    base = ["privacy", "audit", "--dataset", "digits", "--epsilon", "1", "--canaries", "400", "--epochs", "3"]
    assert run([*base, "--format", "json"]) == 0
    ok = _json(capsys)
    assert ok["consistent"] is True and ok["epsilon_lower_bound"] <= 1.0
    assert run([*base, "--unsafe-noise-multiplier", "0"]) == 1  # a finding: DP is broken
    captured = capsys.readouterr()
    assert "VIOLATES" in captured.out and "exceeds the claimed" in captured.err


@pytest.mark.slow
def test_train_as_a_real_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "m"
    env = {**os.environ, "BASTION_HOME": str(tmp_path / "no-home")}

    def bastion(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASTION, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    proc = bastion("train", "--dataset", "wine", "--epochs", "3", "--out", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] > 0.8
    bad = bastion("train", "--dataset", "wine", "--dp", "--epsilon", "-1", "--out", str(out))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_only_admins_set_budgets_and_auditors_cannot_train(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_vault(home=home) as vault:
        _, ds_token = vault.create_token(name="dana", role="data-scientist")
        _, auditor_token = vault.create_token(name="otto", role="auditor")
    assert run(["privacy", "budget", "set", "wine", "--epsilon", "4"]) == 0  # the owner (admin)
    monkeypatch.setenv("BASTION_TOKEN", ds_token)
    assert run(["privacy", "budget", "set", "wine", "--epsilon", "100"]) == 2
    assert "error:" in capsys.readouterr().err
    q = ["privacy", "query", "count", "--dataset", "wine", "--column", "alcohol", "--epsilon", "0.5"]
    assert run([*q, "--format", "json"]) == 0  # a data scientist may spend the budget an admin set
    assert _json(capsys)["dataset"] == ledger_key("wine")
    monkeypatch.setenv("BASTION_TOKEN", auditor_token)
    assert run(q) == 2
    assert run(["privacy", "budget", "show", "wine", "--format", "json"]) == 0
    shown = _json(capsys)
    assert shown["epsilon_budget"] == 4.0 and shown["spends"][0]["actor"] == "dana"


def test_audit_in_a_project_spends_the_ledger(home: Path, capsys) -> None:
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "1.5"]) == 0
    base = ["privacy", "audit", "--dataset", "digits", "--epsilon", "1", "--canaries", "200", "--epochs", "2"]
    assert run(base) == 0
    assert run(base) == 2  # the audited run trains on digits: 1 + 1 > 1.5
    assert "exhausted" in capsys.readouterr().err
    assert run([*base, "--unsafe-noise-multiplier", "0"]) == 2  # unbounded ε on a budgeted dataset
    assert "outside this project home" in capsys.readouterr().err  # issue 14 item 1: say how to proceed
    assert run(["privacy", "budget", "show", "digits", "--format", "json"]) == 0
    spends = json.loads(capsys.readouterr().out)["spends"]
    assert [(s["kind"], s["epsilon"]) for s in spends] == [("audit", 1.0)]
    assert spends[0]["details"]["consistent"] is True


def test_train_push_without_push_permission_is_refused_before_training(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 12 item 31: the push permission is known before the run; refuse before spending anything
    assert run(["privacy", "budget", "set", "wine", "--epsilon", "5"]) == 0
    with open_vault(home=home) as vault:
        _, token = vault.create_token(name="dana", role="data-scientist")  # dev and staging only
    monkeypatch.setenv("BASTION_TOKEN", token)
    capsys.readouterr()
    argv = ["train", "--dataset", "wine", "--dp", "--epsilon", "1", "--epochs", "1"]
    assert run([*argv, "--push", "wine-dp", "--env", "prod"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error:") and "trained" not in captured.out
    monkeypatch.delenv("BASTION_TOKEN")
    assert run(["privacy", "budget", "show", "wine", "--format", "json"]) == 0
    assert _json(capsys)["spends"] == []
