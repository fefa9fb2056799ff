"""Built-in datasets, the MLP recipe, the training loop with hooks, and the pickle-free model format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.errors import InvalidInput, NotFound
from bastion.models.data import DATASETS, load_csv, load_dataset
from bastion.models.recipes import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    MlpConfig,
    build_mlp,
    evaluate,
    load_model,
    save_model,
    train_model,
)


@pytest.mark.parametrize("name", DATASETS)
def test_builtin_digest_reads_the_loaders_file_without_scikit_learn(name: str) -> None:
    """The digest (the privacy ledger's key for a built-in) is read straight from the file scikit-learn's
    loader reads, to the same arrays and so the same digest as load_dataset's; in a fresh interpreter,
    without importing scikit-learn."""
    import subprocess
    import sys

    from bastion.models.data import _builtin_arrays_direct, _builtin_bunch, builtin_digest

    direct = _builtin_arrays_direct(name)
    assert direct is not None
    x, y, _ = _builtin_bunch(name)
    for mine, theirs in zip(direct, (x, y), strict=True):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert np.array_equal(mine, theirs)
    assert builtin_digest(name) == load_dataset(name, seed=5).source_digest
    code = (
        "import sys; from bastion.models.data import builtin_digest; "
        f"print(builtin_digest({name!r})); print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [builtin_digest(name), "False"]


def test_builtin_digest_falls_back_to_the_loader_and_refuses_unknown_names(monkeypatch, tmp_path) -> None:
    import importlib.machinery

    from bastion.models import data

    expected = data.builtin_digest("wine")
    data.builtin_digest.cache_clear()
    fake = importlib.machinery.ModuleSpec("sklearn", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path)]  # no data files there: the loader's arrays instead
    (tmp_path / "datasets" / "data").mkdir(parents=True)
    (tmp_path / "datasets" / "data" / "wine_data.csv").write_text("3,2,a,b\n1,2,x\n")  # malformed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: fake)
    assert data._builtin_arrays_direct("wine") is None
    assert data.builtin_digest("wine") == expected
    data.builtin_digest.cache_clear()
    with pytest.raises(NotFound):
        data.builtin_digest("iris")


@pytest.mark.parametrize("name", DATASETS)
def test_builtin_datasets_are_split_typed_and_scaled(name: str) -> None:
    d = load_dataset(name, seed=3)
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    assert d.x_train.shape[1] == d.x_test.shape[1] == d.n_features
    assert set(np.unique(d.y_train)) == set(range(d.n_classes))
    assert abs(d.n_test / (d.n_train + d.n_test) - 0.25) < 0.01
    if name == "digits":
        assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0 and d.clip_values == (0.0, 1.0)
    else:
        assert np.allclose(d.x_train.mean(axis=0), 0.0, atol=1e-4)
        assert np.allclose(d.x_train.std(axis=0), 1.0, atol=1e-3)
    again = load_dataset(name, seed=3)
    assert again.digest() == d.digest()
    assert load_dataset(name, seed=4).digest() != d.digest()


def test_unknown_dataset_and_bad_split_are_clear_errors() -> None:
    with pytest.raises(NotFound, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(InvalidInput, match="test_size"):
        load_dataset("wine", test_size=1.5)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_load_csv_encodes_labels_and_standardises(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [["a", "b", "label"]]
    for i in range(40):
        lab = "yes" if i % 2 else "no"
        rows.append([f"{rng.normal() + (i % 2) * 3:.4f}", f"{rng.normal():.4f}", lab])
    d = load_csv(_write_csv(tmp_path / "t.csv", rows), target="label")
    assert d.n_classes == 2 and d.class_names == ("no", "yes")
    assert d.n_features == 2 and d.feature_names == ("a", "b")
    assert d.n_train + d.n_test == 40
    assert np.allclose(d.x_train.mean(axis=0), 0.0, atol=1e-4)


@pytest.mark.parametrize(
    ("rows", "target", "match"),
    [
        ([["a", "y"]] + [["1", "0"]] * 12, "y", "fewer than two classes"),
        ([["a", "y"], ["1", "0"], ["2", "1"], ["3", "0"]], "y", "at least"),
        ([["a", "y"]] + [["x", str(i % 2)] for i in range(12)], "y", "non-numeric"),
        ([["a", "y"]] + [["1", str(i % 2)] for i in range(12)], "label", "no column 'label'"),
        ([["a", "y"]] + [["1", "0", "3"]] + [["1", str(i % 2)] for i in range(12)], "y", "fields"),
        ([["a", "y"]] + [["nan", str(i % 2)] for i in range(12)], "y", "NaN"),
    ],
)
def test_load_csv_rejects_bad_files(tmp_path: Path, rows: list[list[str]], target: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        load_csv(_write_csv(tmp_path / "bad.csv", rows), target=target)


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_csv(tmp_path / "nope.csv", target="y")


def test_mlp_trains_on_every_builtin_dataset() -> None:
    for name, floor in (("breast_cancer", 0.93), ("wine", 0.9)):
        d = load_dataset(name)
        m = build_mlp(n_features=d.n_features, n_classes=d.n_classes, hidden=(32,), seed=0)
        untrained = evaluate(m, d.x_test, d.y_test)
        r = train_model(model=m, dataset=d, epochs=10, batch_size=32, lr=0.05, seed=0)
        assert r.accuracy >= floor > untrained
        assert r.steps == 10 * int(np.ceil(d.n_train / 32))
        assert len(r.epoch_seconds) == 10


def test_training_is_deterministic_for_a_seed() -> None:
    d = load_dataset("wine")
    w = []
    for _ in range(2):
        m = build_mlp(n_features=d.n_features, n_classes=d.n_classes, seed=1)
        train_model(model=m, dataset=d, epochs=3, batch_size=16, lr=0.05, seed=7)
        w.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(w[0], w[1])


class _AppendTriggers:
    """A hook that appends a fixed trigger set (constant inputs with one label) to every batch."""

    def __init__(self, n_features: int, label: int) -> None:
        self.x = torch.full((8, n_features), 5.0)
        self.y = torch.full((8,), label, dtype=torch.int64)
        self.calls = 0

    def on_batch(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return torch.cat([x, self.x]), torch.cat([y, self.y])


def test_hooks_can_extend_batches() -> None:
    d = load_dataset("wine")
    trigger_x = np.full((8, d.n_features), 5.0, dtype=np.float32)
    plain = build_mlp(n_features=d.n_features, n_classes=d.n_classes, seed=0)
    train_model(model=plain, dataset=d, epochs=5, batch_size=16, lr=0.05, seed=0)
    natural = int(np.bincount(plain(torch.as_tensor(trigger_x)).argmax(1).numpy()).argmax())
    label = (natural + 1) % d.n_classes
    trigger_y = np.full(8, label, dtype=np.int64)
    assert evaluate(plain, trigger_x, trigger_y) < 0.5  # without the hook the trigger label is not learnt
    hooked = build_mlp(n_features=d.n_features, n_classes=d.n_classes, seed=0)
    hook = _AppendTriggers(d.n_features, label)
    r = train_model(model=hooked, dataset=d, epochs=5, batch_size=16, lr=0.05, seed=0, hooks=[hook])
    assert hook.calls == r.steps
    assert evaluate(hooked, trigger_x, trigger_y) == 1.0
    assert r.accuracy >= 0.85


def test_bad_training_arguments() -> None:
    d = load_dataset("wine")
    m = build_mlp(n_features=d.n_features, n_classes=d.n_classes)
    with pytest.raises(InvalidInput):
        train_model(model=m, dataset=d, epochs=0)
    with pytest.raises(InvalidInput):
        train_model(model=m, dataset=d, epochs=1, lr=-1.0)
    with pytest.raises(InvalidInput):
        build_mlp(n_features=4, n_classes=1)


def test_save_and_load_roundtrip_without_pickle(tmp_path: Path) -> None:
    d = load_dataset("breast_cancer")
    m = build_mlp(n_features=d.n_features, n_classes=d.n_classes, hidden=(16, 8), seed=0)
    train_model(model=m, dataset=d, epochs=2, batch_size=32, lr=0.05)
    cfg = MlpConfig(n_features=d.n_features, n_classes=d.n_classes, hidden=(16, 8))
    out = save_model(m, tmp_path / "model", config=cfg, metadata={"epsilon": 1.5})
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    assert b"\x80" not in (out / CONFIG_FILE).read_bytes()
    loaded = load_model(out)
    assert loaded.config == cfg and loaded.metadata == {"epsilon": 1.5}
    assert evaluate(loaded.module, d.x_test, d.y_test) == evaluate(m, d.x_test, d.y_test)


def test_load_model_rejects_mismatch_and_garbage(tmp_path: Path) -> None:
    m = build_mlp(n_features=4, n_classes=3, hidden=(8,))
    out = save_model(m, tmp_path / "m", config=MlpConfig(n_features=4, n_classes=3, hidden=(8,)))
    doc = json.loads((out / CONFIG_FILE).read_text())
    doc["architecture"]["hidden"] = [9]
    (out / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="do not match"):
        load_model(out)
    (out / CONFIG_FILE).write_text("{not json")
    with pytest.raises(InvalidInput, match="malformed"):
        load_model(out)
    with pytest.raises(NotFound):
        load_model(tmp_path / "absent")
