"""Issue 14 item 10: the feature scaling a model was trained with travels with the model and is applied."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.models.data import Preprocessing, load_dataset
from bastion.models.recipes import MlpConfig, build_mlp, load_model, save_model


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine"])
def test_builtin_datasets_carry_the_training_split_statistics(name: str) -> None:
    ds = load_dataset(name, seed=3)
    prep = ds.preprocessing
    assert prep is not None and prep.n_features == ds.n_features
    from sklearn import datasets

    raw = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    x = raw[name]().data
    # the stored preprocessing maps raw rows into the input space: one raw row lands exactly
    # onto the first training row
    mapped = prep.apply(x)
    assert np.min(np.abs(mapped - ds.x_train[0]).max(axis=1)) < 1e-5


def test_save_and_load_round_trip_the_preprocessing(tmp_path: Path) -> None:
    ds = load_dataset("wine")
    cfg = MlpConfig(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(8,))
    module = build_mlp(n_features=cfg.n_features, n_classes=cfg.n_classes, hidden=cfg.hidden)
    save_model(module, tmp_path / "m", config=cfg, preprocessing=ds.preprocessing)
    assert load_model(tmp_path / "m").preprocessing == ds.preprocessing
    save_model(module, tmp_path / "plain", config=cfg)
    assert load_model(tmp_path / "plain").preprocessing is None
    with pytest.raises(InvalidInput, match="features"):
        save_model(module, tmp_path / "bad", config=cfg, preprocessing=Preprocessing("scale", (0.0,), (1.0,)))


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "standardise", "shift": [0.0] * 13, "scale": [0.0] * 13},  # division by zero
        {"kind": "standardise", "shift": [0.0] * 13, "scale": [1.0] * 12},  # lengths differ
        {"kind": "standardise", "shift": [0.0] * 3, "scale": [1.0] * 3},  # not the model's width
        {"kind": "whiten", "shift": [0.0] * 13, "scale": [1.0] * 13},  # unknown kind
        {"kind": "standardise", "shift": "0"},  # malformed
    ],
)
def test_a_malformed_stored_preprocessing_is_refused(tmp_path: Path, record: dict) -> None:
    ds = load_dataset("wine")
    cfg = MlpConfig(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(8,))
    module = build_mlp(n_features=cfg.n_features, n_classes=cfg.n_classes, hidden=cfg.hidden)
    save_model(module, tmp_path / "m", config=cfg, preprocessing=ds.preprocessing)
    path = tmp_path / "m" / "config.json"
    doc = json.loads(path.read_text())
    doc["preprocessing"] = record
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput):
        load_model(tmp_path / "m")


def test_apply_checks_the_width() -> None:
    prep = Preprocessing("standardise", (1.0, 2.0), (2.0, 4.0))
    assert prep.apply(np.array([[3.0, 6.0]])).tolist() == [[1.0, 1.0]]
    with pytest.raises(InvalidInput, match="features"):
        prep.apply(np.zeros((1, 3)))
