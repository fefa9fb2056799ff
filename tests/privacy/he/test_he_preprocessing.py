"""Issue 14 item 10: `he evaluate` on raw features applies the preprocessing stored with the model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from bastion.cli import run
from bastion.privacy.he import load_he_model


def _raw_csv(path: Path) -> Path:
    data = load_breast_cancer()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{i}" for i in range(data.data.shape[1])] + ["label"])
        for x, y in zip(data.data[:150], data.target[:150], strict=True):
            w.writerow([*x.tolist(), int(y)])
    return path


def _accuracy(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert run([*args, "--layout", "packed", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_raw_breast_cancer_is_scaled_with_the_stored_statistics(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.safetensors"
    _accuracy(["he", "evaluate", "--dataset", "breast_cancer", "--save-model", str(model)], capsys)
    assert load_he_model(model).preprocessing is not None
    raw = _raw_csv(tmp_path / "raw.csv")
    args = ["he", "evaluate", "--model", str(model), "--data", str(raw), "--target", "label"]
    scaled = _accuracy(args, capsys)
    assert scaled["encrypted_accuracy"] >= 0.9
    assert any("stored preprocessing" in n for n in scaled["notes"])
    # what happened before: the raw rows fed as they are (now only on request)
    as_given = _accuracy([*args, "--preprocessed"], capsys)
    assert as_given["encrypted_accuracy"] < scaled["encrypted_accuracy"] - 0.2
