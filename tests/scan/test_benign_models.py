"""Real-world benign models of issue 19's list: each scans clean and ``safe_load`` returns a working model."""

from __future__ import annotations

import argparse
import io
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch

from bastion.cli import run
from bastion.scan import Verdict, safe_load, scan


def _models() -> dict[str, tuple[Any, Any]]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(x, columns=list("abcd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "knn-kdtree": (KNeighborsClassifier(algorithm="kd_tree").fit(x, y), x),
            "grid-search": (
                GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=3).fit(x, y),
                x,
            ),
            "hist-gb": (HistGradientBoostingClassifier(max_iter=10).fit(x, y), x),
            "column-selector": (
                make_pipeline(
                    ColumnTransformer(
                        [("s", StandardScaler(), make_column_selector(dtype_include=np.number))]
                    ),
                    LogisticRegression(max_iter=300),
                ).fit(frame, y),
                frame,
            ),
            "log1p-kbest": (
                make_pipeline(
                    FunctionTransformer(np.log1p),
                    SelectKBest(f_classif, k=2),
                    LogisticRegression(max_iter=300),
                ).fit(x, y),
                x,
            ),
        }


MODELS = _models()


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("save_as", ["joblib", "joblib-gz", "pickle-p2", "pickle-p5"])
def test_sklearn_models_scan_clean_and_load(name: str, save_as: str, tmp_path: Path) -> None:
    model, x = MODELS[name]
    path = tmp_path / f"{name}.{save_as}"
    if save_as == "joblib":
        joblib.dump(model, path)
    elif save_as == "joblib-gz":
        joblib.dump(model, path, compress=3)
    else:
        path.write_bytes(pickle.dumps(model, protocol=int(save_as[-1])))
    report = scan(paths=[path])
    assert report.verdict is Verdict.safe, report.files[0]
    loaded = safe_load(path)
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_hist_gradient_boosting_skops(tmp_path: Path) -> None:
    import skops.io as sio

    model, x = MODELS["hist-gb"]
    sio.dump(model, tmp_path / "hgb.skops")
    assert scan(paths=[tmp_path / "hgb.skops"]).verdict is Verdict.safe
    from bastion.adversarial.loading import _load_skops

    loaded = _load_skops(tmp_path / "hgb.skops", trusted_types=(), reference="hgb")
    assert np.array_equal(loaded.adapter.predict(x), model.predict(x))  # type: ignore[attr-defined]


def test_torch_checkpoint_with_argparse_namespace(tmp_path: Path) -> None:
    args = argparse.Namespace(lr=3e-4, epochs=10, arch="mlp")
    net = torch.nn.Linear(4, 2)
    torch.save({"state_dict": net.state_dict(), "args": args, "epoch": 3}, tmp_path / "ckpt.pt")
    assert scan(paths=[tmp_path / "ckpt.pt"]).verdict is Verdict.safe
    loaded = safe_load(tmp_path / "ckpt.pt")
    assert loaded["args"] == args and torch.equal(loaded["state_dict"]["weight"], net.weight)


@pytest.mark.parametrize("proto", [0, 1, 2])
def test_plain_pickles_of_builtins(proto: int, tmp_path: Path) -> None:
    value = {"ids": range(5), "tags": {"a", "b"}, "blob": b"\x00\x01\xff", "nested": [(1, 2.5, None, True)]}
    path = tmp_path / f"v{proto}.pkl"
    path.write_bytes(pickle.dumps(value, protocol=proto))  # protocols 0-2 name __builtin__.xrange/set/bytes
    assert scan(paths=[path]).verdict is Verdict.safe
    assert safe_load(path) == value


def test_python2_pickle_names(tmp_path: Path) -> None:
    path = tmp_path / "py2.pkl"
    path.write_bytes(
        b"(dp0\nS'r'\np1\nc__builtin__\nxrange\np2\n(I0\nI4\nI1\ntp3\nRp4\ns."
    )  # as Python 2 wrote it
    assert scan(paths=[path]).verdict is Verdict.safe
    assert safe_load(path) == {"r": range(4)}


def test_encrypted_archive_is_refused_with_a_clear_message(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", pickle.dumps([1], protocol=2))
    raw = bytearray(buf.getvalue())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" bit in both headers
        at = raw.find(sig)
        raw[at + flag_at] |= 0x01
    path = tmp_path / "locked.zip"
    path.write_bytes(bytes(raw))
    assert run(["scan", str(path)]) == 2
    assert "encrypted archive" in capsys.readouterr().out
