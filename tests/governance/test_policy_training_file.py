"""BST-P007 links a model trained with `train --data FILE` to the classification `data scan FILE` recorded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sklearn.datasets import load_wine
from tests._support.cli_home import project_home

from bastion.cli import run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = project_home(tmp_path, monkeypatch)
    with (h / "bastion.toml").open("a") as fh:
        fh.write("\n[policy.dev]\nforbid_unprotected_pii = true\n")
    return h


def _csv(path: Path, *, phone: bool) -> Path:
    w = load_wine()
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*(["phone"] if phone else []), *(f"f{i}" for i in range(13)), "label"])
        for i, (x, y) in enumerate(zip(w.data, w.target, strict=True)):
            out.writerow([*([f"+1415555{1000 + i:04d}"] if phone else []), *x.tolist(), int(y)])
    return path


@pytest.mark.parametrize(("phone", "expected"), [(False, 0), (True, 1)])
def test_the_gate_reads_the_scanned_files_classification(
    home: Path, tmp_path: Path, phone: bool, expected: int, capsys
) -> None:
    data = _csv(tmp_path / "train.csv", phone=phone)
    # before any scan: no classification is a violation, never a pass
    assert run(["train", "--data", str(data), "--target", "label", "--epochs", "1", "--push", "m"]) == 0
    assert run(["check", "m:1"]) == 1
    assert "never classified" in capsys.readouterr().out
    assert run(["data", "scan", str(data)]) == 0
    capsys.readouterr()
    assert run(["check", "m:1"]) == expected
    out = capsys.readouterr().out
    assert ("unprotected column(s): phone" in out) is phone
