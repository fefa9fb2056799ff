"""Federated DP spends the same per-dataset privacy ledger as DP-SGD training and DP queries.

These are the cheap paths: every refusal here happens before any Flower process (or even the TLS material)
exists. The full runs that settle a spend are in test_federated.py (shared with the existing federations).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

pytest.importorskip("flwr")

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.errors import BudgetExhausted
from bastion.privacy.federated import FederationConfig, federation_epsilon, reserve_budget, run_federation
from bastion.privacy.ledger import PrivacyLedger, ledger_for_vault
from bastion.privacy.training import ledger_key
from bastion.store.db import open_engine
from bastion.vault import init_project, open_vault

DP_ARGS = ["--dp-noise", "1.0", "--clip", "1.0"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h


def _flower_children() -> list[str]:
    found = []
    for kid in psutil.Process().children(recursive=True):
        try:
            line = " ".join(kid.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # another test's exited child (e.g. a JVM launcher) has no command line to read
        if "flower" in line:
            found.append(line)
    return found


def _assert_nothing_started(home: Path) -> None:
    assert not (home / "federated").exists()  # not even the TLS material was generated
    assert _flower_children() == []


def test_planned_epsilon_is_reserved_and_a_short_budget_refuses(tmp_path) -> None:
    ledger = PrivacyLedger(open_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    cfg = FederationConfig(dataset="digits", clients=3, rounds=4, dp_noise=1.2, clip=1.0, delta=1e-5)
    planned = federation_epsilon(noise_multiplier=1.2, rounds=4, delta=1e-5)
    key = ledger_key("digits")
    ledger.set_budget(key, epsilon=planned * 1.5, delta=1e-4)
    reservation = reserve_budget(cfg, ledger=ledger)
    assert reservation is not None
    assert reservation.epsilon == pytest.approx(planned) and reservation.datasets == (key,)
    assert ledger.status(key).epsilon_spent == pytest.approx(planned)  # reserved counts in full
    with pytest.raises(BudgetExhausted, match="exhausted"):
        run_federation(cfg, tls_dir=tmp_path / "tls", ledger=ledger)  # 2 × planned > 1.5 × planned
    assert not (tmp_path / "tls").exists()
    assert len(ledger.status(key).spends) == 1  # the refusal charged nothing
    # a non-private federation of a dataset that has a budget would spend an unbounded ε
    with pytest.raises(BudgetExhausted, match="without DP"):
        run_federation(
            FederationConfig(dataset="digits", clients=3, rounds=1), tls_dir=tmp_path / "tls", ledger=ledger
        )
    # under another ledger name with no budget (and no default) a DP run is refused too
    with pytest.raises(BudgetExhausted, match="no privacy budget"):
        reserve_budget(cfg, ledger=ledger, ledger_dataset="digits-eu")
    assert not (tmp_path / "tls").exists()


def test_cli_refuses_before_any_flower_process_when_the_budget_is_short(home: Path, capsys) -> None:
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "1", "--delta", "1e-4"]) == 0
    capsys.readouterr()
    argv = ["federate", "--dataset", "digits", "--clients", "3", "--rounds", "3", *DP_ARGS]
    assert run(argv) == 2
    err = capsys.readouterr().err
    planned = federation_epsilon(noise_multiplier=1.0, rounds=3, delta=1e-5)
    assert err.startswith("error: privacy budget of 'digits' (sha256:") and "exhausted" in err
    assert "Traceback" not in err
    assert f"needs ε={planned:.4g}" in err
    _assert_nothing_started(home)
    # no DP at all on a budgeted dataset: refused the same way
    assert run(["federate", "--dataset", "digits", "--clients", "3", "--rounds", "1"]) == 2
    assert "without DP" in capsys.readouterr().err
    _assert_nothing_started(home)
    with open_vault(home=home) as vault:
        status = ledger_for_vault(vault).status(ledger_key("digits"))
        denied = [e for e in vault.audit.entries() if e.action == "privacy.spend" and e.outcome == "denied"]
    assert status.spends == ()  # nothing was charged
    assert len(denied) == 1 and denied[0].details["epsilon"] == pytest.approx(planned)
    assert denied[0].target == ledger_key("digits")


def test_cli_spends_the_same_ledger_as_dp_training(home: Path, capsys) -> None:
    """A DP-SGD training run first uses part of the budget; the federation's ε no longer fits in the rest."""
    planned = federation_epsilon(noise_multiplier=1.0, rounds=3, delta=1e-5)
    budget = planned + 1.0
    assert run(["privacy", "budget", "set", "wine", "--epsilon", f"{budget}", "--delta", "1e-4"]) == 0
    train = [
        "train",
        "--dataset",
        "wine",
        "--dp",
        "--epsilon",
        "1.5",
        "--epochs",
        "1",
        "--out",
        str(home / "m"),
    ]
    assert run(train) == 0
    capsys.readouterr()
    assert run(["federate", "--dataset", "wine", "--clients", "2", "--rounds", "3", *DP_ARGS]) == 2
    err = capsys.readouterr().err
    assert "exhausted" in err and "spent ε=" in err
    _assert_nothing_started(home)
    with open_vault(home=home) as vault:
        kinds = [s.kind for s in ledger_for_vault(vault).status(ledger_key("wine")).spends]
    assert kinds == ["train"]


def test_cli_without_privacy_train_permission_is_denied_before_anything_starts(
    home: Path, capsys, monkeypatch
) -> None:
    with open_vault(home=home) as vault:
        _, token = vault.create_token(name="dana", role="consumer", models=["x"])
    monkeypatch.setenv("BASTION_TOKEN", token)
    assert run(["federate", "--dataset", "digits", "--clients", "3", "--rounds", "1", *DP_ARGS]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    _assert_nothing_started(home)
    monkeypatch.delenv("BASTION_TOKEN")
    with open_vault(home=home) as vault:
        assert any(e.outcome == "denied" and e.actor == "dana" for e in vault.audit.entries())
