"""Issue 12 item 31: permission checks live in the library entry points, not only in the CLI.

A library caller holding a low-privilege token opens the vault and calls the functions the CLI calls; each
must refuse without the permission (before any training), exactly as the CLI does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import AccessDenied
from bastion.models.data import load_dataset
from bastion.models.recipes import build_mlp
from bastion.privacy.ledger import ledger_for_vault
from bastion.privacy.training import DPSettings, ledger_key, train_recipe
from bastion.vault import init_project, open_vault
from bastion.watermark import WatermarkKey, embed, ensure_home_key


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    return h


def _tokens(home: Path) -> dict[str, str]:
    with open_vault(home=home) as vault:
        return {
            role: vault.create_token(name=f"t-{role}", role=role)[1] for role in ("data-scientist", "auditor")
        }


class _Untouched:
    calls = 0

    def on_batch(self, model, x, y):
        type(self).calls += 1
        return x, y


def test_budget_set_needs_access_manage_in_the_library(home: Path) -> None:
    tokens = _tokens(home)
    key = ledger_key("wine")
    with open_vault(home=home, token=tokens["data-scientist"]) as vault:
        ledger = ledger_for_vault(vault)
        with pytest.raises(AccessDenied):
            ledger.set_budget(key, epsilon=100.0, delta=1e-4)
        assert not ledger.has_budget(key)
    with open_vault(home=home) as vault:  # the owner (admin) may
        ledger_for_vault(vault).set_budget(key, epsilon=5.0, delta=1e-4, label="wine")
    with open_vault(home=home, token=tokens["auditor"]) as vault:
        ledger = ledger_for_vault(vault)
        assert ledger.status(key).epsilon_budget == 5.0  # auditors read budgets
        with pytest.raises(AccessDenied):
            ledger.reserve(datasets=key, epsilon=0.1, delta=0.0, kind="query")  # but do not spend
        denied = [e for e in vault.audit.entries() if e.outcome == "denied"]
    assert denied, "refusals are audit-logged"


def test_train_recipe_checks_privacy_train_before_any_step(home: Path) -> None:
    tokens = _tokens(home)
    ds = load_dataset("wine")
    with open_vault(home=home) as vault:
        ledger_for_vault(vault).set_budget(ledger_key("wine"), epsilon=5.0, delta=1e-4)
    _Untouched.calls = 0
    with open_vault(home=home, token=tokens["auditor"]) as vault, pytest.raises(AccessDenied):
        train_recipe(dataset=ds, dp=DPSettings(epsilon=1.0), epochs=1, vault=vault, hooks=[_Untouched()])
    with open_vault(home=home, token=tokens["auditor"]) as vault, pytest.raises(AccessDenied):
        train_recipe(dataset=ds, epochs=1, vault=vault, hooks=[_Untouched()])
    assert _Untouched.calls == 0
    with open_vault(home=home, token=tokens["data-scientist"]) as vault:
        report = train_recipe(dataset=ds, dp=DPSettings(epsilon=1.0), epochs=1, batch_size=32, vault=vault)
        assert report.spend_id is not None and report.ledger_dataset == ledger_key("wine")
        assert ledger_for_vault(vault).status(ledger_key("wine")).spends[0].actor == "t-data-scientist"


def test_watermark_embed_and_key_creation_check_watermark_embed(home: Path) -> None:
    tokens = _tokens(home)
    ds = load_dataset("wine")
    model = build_mlp(n_features=ds.n_features, n_classes=ds.n_classes, seed=0)
    key = WatermarkKey.from_secret(bytes(range(32)))
    with open_vault(home=home, token=tokens["auditor"]) as vault:
        with pytest.raises(AccessDenied):
            embed(model=model, dataset=ds, key=key, epochs=1, vault=vault)
        with pytest.raises(AccessDenied):
            ensure_home_key(vault=vault)
    assert not (home / "watermark").exists()
