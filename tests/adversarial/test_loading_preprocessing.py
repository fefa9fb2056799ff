"""Issue 14 item 10 in the audit: ``bastion audit --model DIR --data raw.npz`` applies the preprocessing the
model directory stores, exactly once, so the audit measures the model the user trained (≈0.96 clean accuracy
on raw breast_cancer rows, not ≈0.65)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.adversarial.loading import load_data, open_model, to_model_space
from bastion.cli import run

pytestmark = pytest.mark.slow  # trains a small breast_cancer MLP (≈ 10 s on a busy machine)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    import torch

    from bastion.models.recipes import MlpConfig, build_mlp, load_dataset, save_model, train_model

    torch.set_num_threads(1)
    ds = load_dataset("breast_cancer")
    assert ds.preprocessing is not None
    cfg = MlpConfig(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(16,))
    module = build_mlp(n_features=cfg.n_features, n_classes=cfg.n_classes, hidden=cfg.hidden, seed=0)
    result = train_model(model=module, dataset=ds, epochs=8, lr=0.05, seed=0)
    root = tmp_path_factory.mktemp("bc-audit")
    directory = save_model(module, root / "model", config=cfg, preprocessing=ds.preprocessing)
    np.savez(root / "raw.npz", x=ds.preprocessing.invert(ds.x_test), y=ds.y_test)
    return directory, root / "raw.npz", float(result.accuracy)


def _accuracy(adapter: object, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(adapter.predict(x) == y))  # type: ignore[attr-defined]


def test_the_model_directory_carries_its_preprocessing_into_the_audit(
    trained: tuple[Path, Path, float],
) -> None:
    directory, raw_npz, accuracy = trained
    data = load_data(raw_npz)
    with open_model(str(directory), input_shape=(30,), n_classes=2) as loaded:
        assert loaded.preprocessing is not None and loaded.preprocessing.kind == "standardise"
        mapped = to_model_space(data, loaded)
        assert _accuracy(loaded.adapter, mapped.x, mapped.y) == pytest.approx(accuracy, abs=1e-9)
        assert _accuracy(loaded.adapter, data.x, data.y) < accuracy - 0.1  # raw rows unscaled: far off
    assert accuracy > 0.9


def test_the_cli_audit_on_raw_rows_reports_the_trained_accuracy(
    tmp_path: Path, trained: tuple[Path, Path, float]
) -> None:
    directory, raw_npz, accuracy = trained
    out = tmp_path / "audit"
    args = ["audit", "--model", str(directory), "--data", str(raw_npz), "--out", str(out)]
    code = run([*args, "--attacks", "evasion", "--budget", "quick", "--format", "json"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    evasion = report["sections"]["evasion"]["metrics"]
    # the quick budget attacks a subset of the rows: its clean accuracy is the trained one up to sampling
    assert evasion["clean_accuracy"] == pytest.approx(accuracy, abs=0.04) and evasion["clean_accuracy"] > 0.9
    assert report["model"]["preprocessing"] == "standardise"
