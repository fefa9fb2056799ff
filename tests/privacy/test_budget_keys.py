"""Issue 12 item 28: no default budget (fail closed), budgets keyed by the data's digest, refusals that say
what to run. Every refusal here happens before any training, so the tests are fast."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.errors import BudgetExhausted, IntegrityError, InvalidInput
from bastion.models.data import load_dataset
from bastion.privacy.ledger import ledger_for_vault
from bastion.privacy.training import dataset_ledger_key, ledger_key, resolve_ledger_dataset
from bastion.vault import init_project, open_vault


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h


def _csv(path: Path, rows: int = 40) -> Path:
    lines = ["age,dose,outcome"] + [f"{20 + i},{i % 7}.5,{i % 2}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_fresh_home_has_no_default_budget_and_the_refusal_says_what_to_run(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    train = ["train", "--dataset", "digits", "--dp", "--epsilon", "3", "--epochs", "1", "--out", str(out)]
    assert run(train) == 2
    err = capsys.readouterr().err
    assert "no privacy budget set for dataset 'digits'" in err
    assert "bastion privacy budget set digits --epsilon" in err and "Traceback" not in err
    assert not out.exists()  # refused before training
    query = ["privacy", "query", "count", "--dataset", "wine", "--column", "alcohol", "--epsilon", "0.1"]
    assert run(query) == 2
    assert "bastion privacy budget set wine --epsilon" in capsys.readouterr().err
    audit = ["privacy", "audit", "--dataset", "wine", "--epsilon", "1", "--canaries", "20", "--epochs", "1"]
    assert run(audit) == 2
    assert "no privacy budget set for dataset 'wine'" in capsys.readouterr().err
    with open_vault(home=home) as vault:
        ledger = ledger_for_vault(vault)
        assert ledger.datasets() == []  # nothing was created on the way
        with pytest.raises(BudgetExhausted, match="no privacy budget"):
            ledger.reserve(datasets=ledger_key("digits"), epsilon=0.1, delta=0.0, kind="train")
    # the hint is the command that works
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "0.05"]) == 0
    capsys.readouterr()
    assert run(train) == 2
    err = capsys.readouterr().err
    assert "privacy budget of 'digits' (sha256:" in err and "exhausted" in err and not out.exists()


def test_a_default_budget_setting_is_refused_not_ignored(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = home / "bastion.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[privacy]\ndefault_budget = 10\n", encoding="utf-8")
    assert (
        run(["privacy", "query", "count", "--dataset", "wine", "--column", "alcohol", "--epsilon", "0.1"])
        == 2
    )
    err = capsys.readouterr().err
    assert "default_budget is no longer supported" in err and "Traceback" not in err


def test_budgets_follow_the_data_not_its_name(home: Path, tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "patients.csv")
    renamed = tmp_path / "renamed.csv"
    shutil.copy(data, renamed)
    # the refusal's hint names the file as the caller gave it, so the command it prints works
    train = ["train", "--data", str(data), "--target", "outcome", "--dp", "--epsilon", "1", "--out", "m"]
    assert run(train) == 2
    assert f"bastion privacy budget set {data} --epsilon E" in capsys.readouterr().err
    assert run(["privacy", "budget", "set", str(data), "--epsilon", "1"]) == 0
    capsys.readouterr()
    count = ["privacy", "query", "count", "--column", "age", "--epsilon", "0.6"]
    assert run([*count, "--data", str(renamed)]) == 0  # a copy under another name: the same budget
    capsys.readouterr()
    assert run([*count, "--data", str(data)]) == 2  # 0.6 + 0.6 > 1: refused
    assert "privacy budget of 'patients.csv'" in capsys.readouterr().err
    assert run(["privacy", "budget", "show", str(renamed), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dataset"] == ledger_key(data) and shown["label"] == "patients.csv"
    assert [s["kind"] for s in shown["spends"]] == ["query"]
    # a free-form name would be a budget no data is ever charged to; the override flags are gone
    assert run(["privacy", "budget", "set", "patients", "--epsilon", "5"]) == 2
    assert "not a built-in dataset" in capsys.readouterr().err
    assert run([*count, "--data", str(data), "--ledger-name", "fresh"]) == 2
    assert run(["federate", "--dataset", "wine", "--ledger-name", "fresh"]) == 2


def test_builtin_keys_are_the_raw_data_digest_whatever_the_split() -> None:
    key = ledger_key("digits")
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    assert dataset_ledger_key(load_dataset("digits", seed=0)) == key
    assert dataset_ledger_key(load_dataset("digits", seed=7, test_size=0.5)) == key
    assert ledger_key("wine") != key
    assert resolve_ledger_dataset("digits") == (key, "digits")
    assert resolve_ledger_dataset(key) == (key, None)
    with pytest.raises(InvalidInput):
        resolve_ledger_dataset("sha256:xyz")


def test_budgets_keyed_by_name_before_the_upgrade_keep_their_spends(home: Path) -> None:
    from bastion.privacy.ledger import PrivacyLedger

    with open_vault(home=home) as vault:
        legacy = PrivacyLedger(vault.engine)  # what earlier versions wrote: keys by built-in name
        legacy.set_budget("digits", epsilon=4.0, delta=1e-4)
        legacy.reserve(datasets="digits", epsilon=3.0, delta=1e-5, kind="train")
        ledger = ledger_for_vault(vault)  # migrates on open
        with pytest.raises(IntegrityError, match="not sealed"):  # rows from before seals: the owner reviews
            ledger.status(ledger_key("digits"))
        assert ledger.seal_all() == [ledger_key("digits")]
        status = ledger.status(ledger_key("digits"))
        assert status.label == "digits" and status.epsilon_budget == 4.0 and status.epsilon_spent == 3.0
        assert not legacy.has_budget("digits")
        with pytest.raises(BudgetExhausted, match="exhausted"):  # not a fresh budget after the upgrade
            ledger.reserve(datasets=ledger_key("digits"), epsilon=1.5, delta=0.0, kind="train")
        assert [e.action for e in vault.audit.entries()].count("privacy.budget.migrate") == 1
        assert ledger_for_vault(vault).migrate_legacy_keys() == []  # once
