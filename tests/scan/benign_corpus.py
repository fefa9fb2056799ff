"""A benign model corpus generated from the installed libraries (no downloads), for the false-positive rate.

Every file is what a user of that library writes with its documented save call: torch state dicts and whole
modules of several ``torch.nn`` architectures (zip and legacy format, training checkpoints with optimizer and
scheduler state and ``argparse`` arguments, numpy values and RNG states, a Hugging Face-style nested
checkpoint, TorchScript), scikit-learn estimators, pipelines and searches with named scorers
(``scoring="accuracy"``, multi-metric) through joblib (plain and compressed), pickle and skops, NumPy
``.npy``/``.npz``, safetensors, ONNX (inline, with an external ``weights.bin``, exported from torch), LightGBM
(text and JSON model, pickled/joblib ``Booster`` and ``LGBMClassifier``) and Keras when installed. XGBoost is
left out: its wheel pulls ``nvidia-nccl-cu12`` (``pip install --dry-run xgboost``). A whole-module save of a
*user-defined* class names that class, which no generated allow-list can know (the user allows it with
``--allow``): not part of this corpus.

``python tests/scan/benign_corpus.py [--full]`` prints the clean rate, the load rate and every miss.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


# -- torch --------------------------------------------------------------------------------------------------
def _torch_models() -> dict[str, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)

    models: dict[str, Any] = {
        "mlp": nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4)),
        "cnn": nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 7 * 7, 10),
        ),
        "lstm": nn.LSTM(8, 16, num_layers=2, batch_first=True),
        "gru": nn.GRU(8, 16),
        "transformer": nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True), 2
        ),
        "embedding": nn.Sequential(nn.Embedding(100, 8), nn.LayerNorm(8), nn.GELU()),
        "conv1d": nn.Sequential(nn.Conv1d(2, 4, 3), nn.GroupNorm(2, 4), nn.SiLU(), nn.AdaptiveAvgPool1d(1)),
    }
    return models


def write_torch(root: Path, *, full: bool) -> list[Path]:
    import torch

    out: list[Path] = []
    models = _torch_models()
    names = list(models) if full else ["mlp", "cnn"]
    for name in names:
        model = models[name]
        for suffix, kwargs in ((".pt", {}), (".legacy.pth", {"_use_new_zipfile_serialization": False})):
            path = root / f"torch-{name}-state_dict{suffix}"
            torch.save(model.state_dict(), path, **kwargs)
            out.append(path)
        path = root / f"torch-{name}-module.pt"
        torch.save(model, path)
        out.append(path)
    model = models["mlp"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 16)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    ckpt = {
        "epoch": 3,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "args": argparse.Namespace(lr=1e-3, epochs=10, name="run"),
        "rng": torch.get_rng_state(),
        "best": 0.91,
        "classes": ["a", "b"],
    }
    for suffix in (".ckpt", ".bin", ".tar"):
        path = root / f"torch-training-checkpoint{suffix}"
        torch.save(ckpt, path)
        out.append(path)
    # numpy values inside torch checkpoints: metrics, histories, and the RNG state a Hugging Face Trainer
    # writes (rng_state.pth: python's, numpy's and torch's generator states)
    import random

    mixed = {
        "w": torch.randn(4, 4),
        "steps": np.arange(3),
        "best": np.float64(0.91),
        "hist": np.zeros((2, 3), np.float32),
        "rng_state": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "cpu": torch.get_rng_state(),
        },
    }
    for suffix, kwargs in ((".pt", {}), (".legacy.pth", {"_use_new_zipfile_serialization": False})):
        path = root / f"torch-numpy-values{suffix}"
        torch.save(mixed, path, **kwargs)
        out.append(path)
    if full:
        path = root / "torch-sgd-momentum.pt"
        sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.randn(2, 16)).sum().backward()
        sgd.step()
        torch.save({"opt": sgd.state_dict(), "dtype": torch.float16, "size": torch.Size([2, 3])}, path)
        out.append(path)
        path = root / "torch-tensors-dtypes.pt"
        torch.save({str(d): torch.zeros(3, dtype=d) for d in (torch.int8, torch.bfloat16, torch.bool)}, path)
        out.append(path)
        hf = {  # a Hugging Face-style checkpoint: nested config, weights, tokenizer vocabulary, trainer state
            "config": {
                "architectures": ["MLPForSequenceClassification"],
                "hidden_size": 32,
                "id2label": {0: "neg", 1: "pos"},
                "layer_norm_eps": 1e-5,
                "torch_dtype": "float32",
                "rope_scaling": None,
            },
            "model": {f"encoder.{k}": v for k, v in model.state_dict().items()},
            "tokenizer": {"vocab": {f"tok{i}": i for i in range(50)}, "merges": [("a", "b")]},
            "trainer_state": {"global_step": 10, "log_history": [{"loss": 0.5, "step": 5}]},
            "optimizer": opt.state_dict(),
        }
        path = root / "torch-hf-style.bin"
        torch.save(hf, path)
        out.append(path)
        path = root / "torch-script.pt"
        torch.jit.save(torch.jit.script(models["mlp"]), path)
        out.append(path)
    return out


# -- scikit-learn -------------------------------------------------------------------------------------------
def _sklearn_models(full: bool) -> dict[str, Any]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.datasets import load_iris
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(kind=np.where(y > 0, "p", "q"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models: dict[str, Any] = {
            "logreg": LogisticRegression(max_iter=300).fit(x, y),
            "forest": RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y),
            "knn-kdtree": KNeighborsClassifier(algorithm="kd_tree").fit(x, y),
            "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y),
            "grid-accuracy": GridSearchCV(
                LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, scoring="accuracy", cv=2
            ).fit(x, y),
        }
        if full:
            models |= {
                "hgb": HistGradientBoostingClassifier(max_iter=10).fit(x, y),
                "svc": SVC(probability=True, random_state=0).fit(x, y),
                "tree": DecisionTreeClassifier(random_state=0).fit(x, y),
                "nb": GaussianNB().fit(x, y),
                "ridge": Ridge().fit(x, y),
                "pca": PCA(n_components=2).fit(x),
                "knn-balltree": KNeighborsClassifier(algorithm="ball_tree").fit(x, y),
                "grid": GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(x, y),
                "grid-multimetric": GridSearchCV(
                    make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
                    {"logisticregression__C": [0.1, 1.0]},
                    scoring=["accuracy", "f1_macro", "roc_auc_ovr"],
                    refit="f1_macro",
                    cv=2,
                ).fit(x, y),
                "log1p": Pipeline(
                    [("log", FunctionTransformer(np.log1p)), ("m", LogisticRegression(max_iter=300))]
                ).fit(x, y),
                "columns": Pipeline(
                    [
                        (
                            "ct",
                            ColumnTransformer(
                                [
                                    ("num", StandardScaler(), make_column_selector(dtype_include=np.number)),
                                    ("cat", OneHotEncoder(), make_column_selector(dtype_include=object)),
                                ]
                            ),
                        ),
                        ("m", LogisticRegression(max_iter=300)),
                    ]
                ).fit(frame, y),
                "impute": make_pipeline(SimpleImputer(), StandardScaler()).fit(x),
                "tfidf": make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
                    ["good model", "bad model", "fine", "awful"], [1, 0, 1, 0]
                ),
            }
    return models


def write_sklearn(root: Path, *, full: bool) -> list[Path]:
    import joblib

    out: list[Path] = []
    for name, model in _sklearn_models(full).items():
        forms: list[tuple[str, Callable[[Path], None]]] = [
            (".joblib", lambda p, m=model: joblib.dump(m, p)),
            (".pkl", lambda p, m=model: p.write_bytes(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))),
        ]
        if full:
            forms += [
                (".joblib.gz", lambda p, m=model: joblib.dump(m, p, compress=("gzip", 3))),
                (".joblib.z", lambda p, m=model: joblib.dump(m, p, compress=3)),
                (".joblib.xz", lambda p, m=model: joblib.dump(m, p, compress=("xz", 1))),
                (".p2.pkl", lambda p, m=model: p.write_bytes(pickle.dumps(m, protocol=2))),
            ]
        if importlib.util.find_spec("skops") is not None:
            import skops.io as sio

            forms.append((".skops", lambda p, m=model: sio.dump(m, p)))
        for suffix, dump in forms:
            path = root / f"sklearn-{name}{suffix}"
            dump(path)
            out.append(path)
    return out


# -- NumPy, safetensors, ONNX -------------------------------------------------------------------------------
def write_arrays(root: Path, *, full: bool) -> list[Path]:
    import torch
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    np.save(root / "numpy-float.npy", rng.random((64, 64)))
    np.save(root / "numpy-int.npy", np.arange(100, dtype=np.int32))
    np.savez(root / "numpy-arrays.npz", w=rng.random(10), b=np.eye(3), names=np.array(["a", "b"]))
    np.savez_compressed(root / "numpy-compressed.npz", w=rng.random(100))
    save_file(
        {"w": torch.randn(8, 8), "b": torch.zeros(8, dtype=torch.bfloat16)}, root / "st-torch.safetensors"
    )
    save_np({"w": rng.random((4, 4)).astype(np.float32)}, root / "st-numpy.safetensors", metadata={"a": "b"})
    out = [
        root / n
        for n in (
            "numpy-float.npy",
            "numpy-int.npy",
            "numpy-arrays.npz",
            "numpy-compressed.npz",
            "st-torch.safetensors",
            "st-numpy.safetensors",
        )
    ]
    if full:
        np.save(root / "numpy-structured.npy", np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2")]))
        np.save(root / "numpy-fortran.npy", np.asfortranarray(rng.random((5, 4))))
        out += [root / "numpy-structured.npy", root / "numpy-fortran.npy"]
    return out


def write_onnx(root: Path, *, full: bool) -> list[Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).random((64, 64)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [w],
    )
    model = helper.make_model(graph)
    onnx.save_model(model, root / "onnx-inline.onnx")
    ext = root / "onnx-external"
    ext.mkdir()
    onnx.save_model(
        model, ext / "model.onnx", save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    out = [root / "onnx-inline.onnx", ext / "model.onnx", ext / "weights.bin"]
    if full:
        import torch

        torch_model = _torch_models()["mlp"].eval()
        path = root / "onnx-from-torch.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(torch_model, (torch.randn(1, 16),), str(path), dynamo=False)
                out.append(path)
            except Exception:  # torch's exporter may need extras (onnxscript): not a scanner concern
                pass
    return out


# -- LightGBM, Keras ----------------------------------------------------------------------------------------
def write_lightgbm(root: Path, *, full: bool) -> list[Path]:
    if importlib.util.find_spec("lightgbm") is None:
        return []
    import joblib
    import lightgbm as lgb
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    booster = clf.booster_
    booster.save_model(str(root / "lgbm-model.txt"))
    (root / "lgbm-booster.pkl").write_bytes(pickle.dumps(booster, protocol=pickle.HIGHEST_PROTOCOL))
    joblib.dump(clf, root / "lgbm-classifier.joblib")
    out = [root / "lgbm-model.txt", root / "lgbm-booster.pkl", root / "lgbm-classifier.joblib"]
    if full:
        (root / "lgbm-model.json").write_text(__import__("json").dumps(booster.dump_model()))
        (root / "lgbm-classifier.pkl").write_bytes(pickle.dumps(clf, protocol=4))
        out += [root / "lgbm-model.json", root / "lgbm-classifier.pkl"]
    return out


def write_keras(root: Path, *, full: bool) -> list[Path]:
    if importlib.util.find_spec("keras") is None:
        return []
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the installed torch (no TensorFlow here)
    import keras

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(root / "keras-functional.keras")
    model.save_weights(root / "keras-functional.weights.h5")
    out = [root / "keras-functional.keras", root / "keras-functional.weights.h5"]
    if full:
        seq = keras.Sequential(
            [
                keras.Input((8, 3)),
                keras.layers.Conv1D(4, 3, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.LSTM(5),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(1e-3)),
            ]
        )
        seq.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
        seq.save(root / "keras-sequential.keras")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seq.save(root / "keras-sequential.h5")  # the legacy HDF5 format
        out += [root / "keras-sequential.keras", root / "keras-sequential.h5"]
    return out


def build(root: Path, *, full: bool) -> dict[str, list[Path]]:
    """Write the corpus under ``root``; returns the files per family."""
    families = {
        "torch": write_torch,
        "sklearn": write_sklearn,
        "arrays": write_arrays,
        "onnx": write_onnx,
        "lightgbm": write_lightgbm,
        "keras": write_keras,
    }
    out: dict[str, list[Path]] = {}
    for family, writer in families.items():
        sub = root / family
        sub.mkdir(parents=True, exist_ok=True)
        out[family] = writer(sub, full=full)
    return out


def main() -> None:
    import tempfile

    from bastion.errors import BastionError
    from bastion.scan import Verdict, safe_load, scan

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="every architecture, estimator and format")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="benign-corpus-") as tmp:
        corpus = build(Path(tmp), full=args.full)
        files = [p for ps in corpus.values() for p in ps]
        report = scan(paths=[Path(tmp)])
        bad = [f for f in report.files if f.verdict is not Verdict.safe]
        for family, paths in corpus.items():
            fam_bad = [f for f in bad if Path(f.path) in paths]
            print(f"{family:<9} {len(paths) - len(fam_bad):>3}/{len(paths):<3} clean")
        clean = len(report.files) - len(bad)
        print(f"clean: {clean}/{len(report.files)} files ({100 * clean / len(report.files):.1f} %)")
        assert len(report.files) == len(files)
        for f in bad:
            why = f.issues[0].message if f.issues else f.errors[0].message
            print(f"  not clean: {Path(f.path).relative_to(tmp)}: {why}")
        models = [Path(f.path) for f in report.files if f.format not in ("onnx-external-data", "hdf5")]
        refused = []
        for path in models:
            try:
                safe_load(path)
            except BastionError as exc:
                refused.append(f"{path.relative_to(tmp)}: {str(exc)[:100]}")
        loaded = len(models) - len(refused)
        print(f"safe_load: {loaded}/{len(models)} model files ({100 * loaded / len(models):.1f} %)")
        for line in refused:
            print(f"  refused: {line}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    main()
