"""No false positives on the files real frameworks write."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bastion.scan import ScanConfig, Verdict, scan


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
        torch.nn.GELU(),
        torch.nn.Dropout(0.1),
        torch.nn.LayerNorm(4),
        torch.nn.Linear(4, 2),
    )


def _estimators() -> dict[str, object]:
    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logreg": LogisticRegression(max_iter=300).fit(x, y),
            "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
            "scaler": StandardScaler().fit(x),
            "mlp": MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(x, y),
            "pipeline": Pipeline([("s", StandardScaler()), ("m", LogisticRegression(max_iter=300))]).fit(
                x, y
            ),
        }


@pytest.fixture(scope="module")
def benign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("benign")
    net = _net()
    torch.save(net.state_dict(), d / "state_dict.pt")
    torch.save(net, d / "whole_module.pt")
    torch.save(net.state_dict(), d / "state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(net, d / "whole_module_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"epoch": 3, "opt": {"lr": 0.1}, "w": torch.zeros(2, dtype=torch.bfloat16)}, d / "ckpt.bin")
    encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1)
    torch.save(encoder, d / "transformer_module.pt")
    torch.save(torch.nn.LSTM(4, 4), d / "lstm_module.pt")
    for name, est in _estimators().items():
        joblib.dump(est, d / f"{name}.joblib")
        joblib.dump(est, d / f"{name}.joblib.gz", compress=("gzip", 3))
        joblib.dump(est, d / f"{name}.joblib.z", compress=3)
        for proto in (2, 5):
            (d / f"{name}.p{proto}.pkl").write_bytes(pickle.dumps(est, protocol=proto))
    joblib.dump(_estimators()["forest"], d / "forest.joblib.xz", compress=("xz", 3))
    joblib.dump(_estimators()["forest"], d / "forest.joblib.bz2", compress=("bz2", 3))
    joblib.dump({"w": np.ones((3, 3)), "names": ["a", "b"]}, d / "mixed.joblib")
    np.save(d / "ints.npy", np.arange(12, dtype=np.int16).reshape(3, 4))
    np.save(d / "floats.npy", np.ones((2, 2), dtype=np.float64))
    np.save(d / "structured.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8")]))
    np.savez(d / "many.npz", a=np.arange(3), b=np.eye(2))
    np.savez_compressed(d / "many_compressed.npz", a=np.arange(300))
    save_file({"w": torch.ones(3, 3), "b": torch.zeros(3, dtype=torch.float16)}, d / "model.safetensors")
    save_file({}, d / "empty.safetensors")
    (d / "README.md").write_text("# a model card\n")
    (d / "config.json").write_text('{"hidden_size": 8, "architectures": ["Net"]}')
    return d


def test_no_false_positives(benign_dir: Path) -> None:
    report = scan(paths=[benign_dir])
    bad = [(f.path, f.issues, f.errors) for f in report.files if f.verdict is not Verdict.safe]
    assert not bad
    assert report.exit_code == 0
    formats = {Path(f.path).name: f.format for f in report.files}
    assert formats["state_dict.pt"] == "torch-zip"
    assert formats["whole_module_legacy.pt"] == "torch-legacy"
    assert formats["forest.joblib"] == "joblib"
    assert formats["forest.joblib.gz"] == "gzip:joblib"
    assert formats["forest.joblib.xz"] == "xz:joblib"
    assert formats["many.npz"] == "npz"
    assert formats["model.safetensors"] == "safetensors"
    assert formats["logreg.p5.pkl"] == "pickle"
    assert len(report.files) >= 40


def test_report_is_json_serialisable(benign_dir: Path) -> None:
    import json

    report = scan(paths=[benign_dir / "forest.joblib", benign_dir / "many.npz"])
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["verdict"] == "safe"
    assert [f["format"] for f in doc["files"]] == ["joblib", "npz"]


def test_torchscript_archive_is_safe_only_when_allowed(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    scripted.save(str(tmp_path / "scripted.pt"))
    report = scan(paths=[tmp_path / "scripted.pt"], config=ScanConfig(unsafe_allow_torchscript=True))
    assert report.files[0].format == "torchscript"
    assert report.verdict is Verdict.safe, report.files[0]
    # by default its code (run by torch.jit.load) makes it unsafe (issue 19, F3)
    default = scan(paths=[tmp_path / "scripted.pt"])
    assert [i.rule for i in default.issues] == ["torchscript-code"]
