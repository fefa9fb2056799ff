"""``watermark embed`` is training: it goes through the privacy ledger and rewrites the model's metadata
(issue 12 item 27); it needs no prior keygen nor an explicit dataset, and ``verify --url`` finds the record in
the registry (issue 14 item 4)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.models.recipes import MlpConfig, load_model, save_model
from bastion.vault import init_project, open_vault

from .test_cli import _gateway

# What `bastion train --dp` wrote into the base model's config.json in the reviewer's run.
DP_BASE_METADATA = {
    "dataset": "digits",
    "private": True,
    "epsilon": 2.9958,
    "delta": 1e-5,
    "accuracy": 0.8733,
    "spend_id": "0" * 32,
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h


def _base(module: Any, path: Path) -> Path:
    cfg = MlpConfig(n_features=64, n_classes=10, hidden=(64,))
    return save_model(module, path, config=cfg, metadata={**DP_BASE_METADATA, "architecture": cfg.to_dict()})


def test_embed_on_a_budgeted_dataset_is_refused_before_anything(
    home: Path, tmp_path: Path, clean_model, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base(clean_model.module, tmp_path / "base")
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "5"]) == 0
    capsys.readouterr()
    out = tmp_path / "wm"
    # the dataset comes from the model's metadata: digits, which has a budget
    assert run(["watermark", "embed", "--model", str(base), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has a privacy budget" in err and "--watermark-key" in err and "Traceback" not in err
    assert run(["watermark", "embed", "--model", str(base), "--dataset", "digits", "--out", str(out)]) == 2
    capsys.readouterr()
    assert not out.exists()
    assert not (home / "watermark").exists()  # no key was created for a refused run
    with open_vault(home=home) as vault:
        from bastion.privacy.ledger import ledger_for_vault
        from bastion.privacy.training import ledger_key

        assert ledger_for_vault(vault).status(ledger_key("digits")).spends == ()
        assert not [e for e in vault.audit.entries() if e.action == "watermark:embed"]


def test_first_use_key_default_dataset_rewritten_metadata_and_registry_records(
    home: Path, tmp_path: Path, clean_model, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base(clean_model.module, tmp_path / "base")
    # no keygen, no --dataset: the key is made on first use (and said), the dataset read from the model
    embed = ["watermark", "embed", "--model", str(base), "--epochs", "4"]
    assert run([*embed, "--push", "digits", "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["key_created"] is True and first["dataset"] == "digits"
    key_id = first["record"]["key_id"]
    assert [p.stem for p in (home / "watermark" / "keys").glob("*.json")] == [key_id]
    assert run([*embed, "--push", "other"]) == 0
    text = capsys.readouterr().out
    assert "created watermark key" not in text and "dataset digits (the model's training dataset)" in text
    # the metadata describes this fine-tuning, not the DP base model
    with open_vault(home=home) as vault, vault.materialize("digits:1") as directory:
        meta = load_model(directory).metadata
    assert meta["private"] is False and meta["epsilon"] is None and meta["training"] == "watermark-fine-tune"
    assert meta["accuracy"] == pytest.approx(first["accuracy_after"]) != DP_BASE_METADATA["accuracy"]
    assert meta["fine_tuned_from"]["epsilon"] == DP_BASE_METADATA["epsilon"]
    assert meta["watermark"]["key_id"] == key_id
    # two watermarks with one key: verify --url picks the one recorded on the served registry model
    from bastion.models.recipes import load_model as _load

    with open_vault(home=home) as vault, vault.materialize("digits:1") as directory:
        served = _load(directory).module
    with _gateway(home, served) as (url, token):
        os.environ["WM_TOKEN"] = token
        try:
            argv = ["watermark", "verify", "--url", url, "--model-name", "digits", "--bearer-env", "WM_TOKEN"]
            assert run([*argv, "--format", "json"]) == 1  # owned
        finally:
            del os.environ["WM_TOKEN"]
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "owned" and doc["commitment"] == meta["watermark"]["commitment"]


def test_a_registry_model_that_is_not_an_mlp_is_named_not_its_temporary_copy(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    linear = tmp_path / "linear"
    linear.mkdir()
    save_file({"weight": np.zeros((10, 64), np.float32)}, str(linear / "model.safetensors"))
    with open_vault(home=home) as vault:
        vault.push(linear, name="linear", kind="model")
    assert run(["watermark", "embed", "--model", "linear", "--dataset", "breast_cancer", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: linear: not a bastion MLP model") and "/tmp/" not in err.split("hint")[0]
