"""``bastion he evaluate --model NAME[:VERSION|@ENV]``: models loaded from the registry through the vault."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tenseal")

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.models.data import load_dataset
from bastion.models.recipes import save_model
from bastion.privacy.he import load_he_model, load_registry_model, looks_like_registry_ref
from bastion.privacy.training import train_recipe
from bastion.vault import init_project, open_vault


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, dict]:
    """A project home holding a linear breast_cancer model pushed with the library (what ``bastion train
    --push`` does, with no hidden layer), and a test-split data file."""
    home = tmp_path / "home"
    init_project(home=home, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(home))
    ds = load_dataset("breast_cancer")
    report = train_recipe(dataset=ds, hidden=(), epochs=5)
    with open_vault(home=home) as vault, tempfile.TemporaryDirectory(dir=home) as tmp:
        model_dir = save_model(
            report.module, Path(tmp) / "model", config=report.config, metadata=report.metadata()
        )
        version = vault.push(model_dir, name="bc-linear", kind="model", metadata=report.metadata())
        expected = load_he_model(model_dir).predict(ds.x_test[:40])
    data = tmp_path / "test.npz"
    np.savez(data, x=ds.x_test[:40], y=ds.y_test[:40])
    return home, data, {"digest": version.manifest_digest, "labels": expected}


def _evaluate(ref: str, data: Path, *extra: str) -> list[str]:
    return ["he", "evaluate", "--model", ref, "--data", str(data), "--layout", "packed", *extra]


def test_registry_reference_is_materialised_verified_and_evaluated(project, capsys) -> None:
    home, data, info = project
    for ref in ("bc-linear", "bc-linear:1", "bc-linear@dev"):
        assert run([*_evaluate(ref, data), "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["agreement"] >= 0.99 and out["samples"] == 40
        assert out["model"] == {"ref": "bc-linear:1", "env": "dev", "manifest_digest": info["digest"]}
    assert run(_evaluate("bc-linear:1", data)) == 0
    assert "registry model bc-linear:1 (dev" in capsys.readouterr().out
    with open_vault(home=home) as vault:
        loaded = load_registry_model(ref="bc-linear", vault=vault)
        actions = [e.action for e in vault.audit.entries()]
    assert np.array_equal(loaded.model.predict(np.load(data)["x"]), info["labels"])
    assert actions.count("registry:pull") >= 5  # every load went through the vault's verified pull


def test_tampered_registry_blob_is_refused(project, capsys) -> None:
    home, data, _ = project
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    assert blobs
    for blob in blobs:
        raw = bytearray(blob.read_bytes())
        raw[-1] ^= 0x01
        blob.chmod(0o600)
        blob.write_bytes(bytes(raw))
    assert run(_evaluate("bc-linear", data)) == 1  # IntegrityError: a finding
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_vault_permissions_apply(project, capsys, monkeypatch) -> None:
    home, data, _ = project
    with open_vault(home=home) as vault:
        _, token = vault.create_token(name="carol", role="consumer", models=["bc-linear"])
    monkeypatch.setenv("BASTION_TOKEN", token)
    assert run(_evaluate("bc-linear", data)) == 2  # a consumer may infer through the gateway, not pull
    assert capsys.readouterr().err.startswith("error: ")
    monkeypatch.delenv("BASTION_TOKEN")
    with open_vault(home=home) as vault:
        denied = [e for e in vault.audit.entries() if e.outcome == "denied"]
    assert denied and denied[-1].actor == "carol"


def test_model_pushed_by_bastion_train_is_loaded_and_relu_refused_clearly(project, capsys) -> None:
    home, data, _ = project
    assert run(["train", "--dataset", "breast_cancer", "--epochs", "2", "--push", "bc-mlp"]) == 0
    capsys.readouterr()
    assert run(_evaluate("bc-mlp", data)) == 2
    err = capsys.readouterr().err
    assert "ReLU" in err and "Traceback" not in err
    # a dataset artifact is not a model
    csv = home.parent / "rows.csv"
    csv.write_text("a,b\n1,2\n", encoding="utf-8")
    with open_vault(home=home) as vault:
        vault.push(csv, name="rows", kind="dataset")
    assert run(_evaluate("rows", data)) == 2
    assert "not a model" in capsys.readouterr().err


def test_unknown_reference_and_missing_home(project, tmp_path, capsys, monkeypatch) -> None:
    _, data, _ = project
    assert run(_evaluate("no-such-model", data)) == 2
    assert capsys.readouterr().err.startswith("error: ")
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "nowhere"))
    assert run(_evaluate("bc-linear", data)) == 2
    assert "no project home" in capsys.readouterr().err


def test_reference_detection() -> None:
    assert looks_like_registry_ref("bc-linear") and looks_like_registry_ref("m:3")
    assert looks_like_registry_ref("m@prod")
    for text in ("dir/model", "m.safetensors", "m.skops", "m:x", "m@nowhere", "", "-bad"):
        assert not looks_like_registry_ref(text), text
