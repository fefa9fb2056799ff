"""``bastion he evaluate`` through the CLI entry point and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tenseal")

from bastion.cli import run
from bastion.models.data import load_dataset
from bastion.privacy.he import model_from_linear, save_he_model


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    ds = load_dataset("breast_cancer")
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(ds.x_train, ds.y_train)
    root = tmp_path_factory.mktemp("he-cli")
    model_path = save_he_model(model_from_linear(clf.coef_, clf.intercept_), root / "lr.safetensors")
    data = root / "test.npz"
    np.savez(data, x=ds.x_test[:40], y=ds.y_test[:40])
    return model_path, data, clf.predict(ds.x_test[:40])


def test_cli_evaluate_model_file_json(model_and_data, capsys) -> None:
    model_path, data, _ = model_and_data
    code = run(
        [
            "he",
            "evaluate",
            "--model",
            str(model_path),
            "--data",
            str(data),
            "--layout",
            "packed",
            "--format",
            "json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["samples"] == 40 and out["agreement"] >= 0.99
    assert set(out["layouts"]) == {"packed"}
    assert out["layouts"]["packed"]["ms_per_sample"] > 0


def test_cli_csv_data_with_target(model_and_data, tmp_path, capsys) -> None:
    model_path, data, _expected = model_and_data
    with np.load(data) as npz:
        x, y = npz["x"], npz["y"]
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    rows = [",".join(map(repr, [*list(map(float, r)), int(t)])) for r, t in zip(x, y)]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text(header + "\n" + "\n".join(rows) + "\n")
    code = run(
        [
            "he",
            "evaluate",
            "--model",
            str(model_path),
            "--data",
            str(csv_path),
            "--target",
            "label",
            "--layout",
            "packed",
            "--format",
            "json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["agreement"] >= 0.99 and out["encrypted_accuracy"] is not None


@pytest.mark.parametrize(
    "args",
    [
        ["he", "evaluate", "--dataset", "nope"],
        ["he", "evaluate"],
        ["he", "evaluate", "--dataset", "wine", "--arch", "relu"],
        ["he", "evaluate", "--model", "/nonexistent/model.safetensors", "--data", "/nonexistent.npz"],
    ],
)
def test_cli_bad_input_exits_2(args, capsys) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_cli_feature_mismatch_is_clear(model_and_data, tmp_path, capsys) -> None:
    model_path, _, _ = model_and_data
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 7)))
    assert run(["he", "evaluate", "--model", str(model_path), "--data", str(tmp_path / "bad.npz")]) == 2
    assert "features" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_subprocess_dataset_logistic(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "he",
            "evaluate",
            "--dataset",
            "breast_cancer",
            "--single-samples",
            "4",
            "--save-model",
            str(tmp_path / "m.safetensors"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["agreement"] >= 0.99
    assert set(out["layouts"]) == {"packed", "single"}
    assert out["speedup_packed_vs_single"] > 1
    assert (tmp_path / "m.safetensors").is_file()


def test_cli_text_output(model_and_data, capsys) -> None:
    model_path, data, _ = model_and_data
    assert run(["he", "evaluate", "--model", str(model_path), "--data", str(data), "--layout", "packed"]) == 0
    out = capsys.readouterr().out
    assert "linear model, 30 features" in out and "packed" in out and "agreement 1.0000" in out


def test_cli_refuses_to_train_on_a_budgeted_dataset_in_a_home(tmp_path, monkeypatch, capsys) -> None:
    # issue 12 item 27: every training on a budgeted dataset goes through the ledger or is refused
    import os

    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "home"
    init_project(home=home, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(home))
    assert run(["privacy", "budget", "set", "breast_cancer", "--epsilon", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "he.safetensors"
    assert run(["he", "evaluate", "--dataset", "breast_cancer", "--save-model", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has a privacy budget" in err and "Traceback" not in err and not out.exists()
