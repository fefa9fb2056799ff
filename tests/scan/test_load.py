"""safe_load, convert and the registry's inspector hook: refuse unsafe files, load clean ones without code."""

from __future__ import annotations

import gc
import warnings
from importlib.metadata import entry_points

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from bastion.errors import InvalidInput, UnsafeArtifact
from bastion.scan import convert, safe_load, scan


@pytest.fixture
def malicious(craft, write, tmp_path):
    marker = tmp_path / "pwned"
    body = craft.call(craft.g("os", "system", 2), craft.s(f"touch {marker}"))
    return write("model.pt", craft.torch_zip(craft.wrap(body, 2))), marker


def test_safe_load_refuses_unsafe(malicious) -> None:
    path, marker = malicious
    with pytest.raises(UnsafeArtifact) as info:
        safe_load(path)
    assert "os.system" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_safe_load_refuses_unscannable(write) -> None:
    with pytest.raises(UnsafeArtifact, match="could not be analysed"):
        safe_load(write("junk.bin", b"\x01\x02garbage"))


def test_safe_load_torch_state_dict(tmp_path) -> None:
    sd = torch.nn.Linear(3, 2).state_dict()
    torch.save(sd, tmp_path / "sd.pt")
    loaded = safe_load(tmp_path / "sd.pt")
    assert torch.equal(loaded["weight"], sd["weight"])
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(safe_load(tmp_path / "legacy.pt")["bias"], sd["bias"])


def test_torch_zip_tensors_are_views_of_the_private_copy(tmp_path) -> None:
    sd = {"a": torch.arange(10_000.0), "b": torch.ones(10), "c": torch.arange(6).reshape(2, 3).t()}
    path = tmp_path / "sd.pt"
    torch.save(sd, path)
    loaded = safe_load(path)
    size = path.stat().st_size
    path.write_bytes(b"\0" * size)  # the file changes after the load: the loaded tensors do not
    gc.collect()
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    loaded["a"] += 1  # writable, and independent of the other tensors
    assert torch.equal(loaded["b"], sd["b"]) and torch.equal(loaded["c"], sd["c"])
    keep = loaded["a"]
    del loaded
    gc.collect()
    assert float(keep.sum()) == float(sd["a"].sum()) + 10_000  # memory alive while a view is


def test_safe_load_whole_module_through_torch_safe_globals(tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    torch.save(net, tmp_path / "m.pt")
    assert scan(paths=[tmp_path / "m.pt"]).verdict.value == "safe"
    loaded = safe_load(tmp_path / "m.pt")  # weights_only=True plus exactly the allow-listed layer classes
    x = torch.randn(4, 3)
    assert type(loaded) is torch.nn.Sequential and torch.equal(loaded(x), net(x))


@pytest.mark.parametrize("zipped", [True, False])
def test_numpy_values_inside_torch_checkpoints_load(tmp_path, zipped) -> None:
    ckpt = {
        "w": torch.arange(4.0),
        "a": np.arange(3),
        "best": np.float64(0.5),
        "rec": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i2")]),
        "numpy_rng": np.random.get_state(),
    }
    path = tmp_path / "np.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipped)
    before = {id(x) for x in torch.serialization.get_safe_globals()}
    loaded = safe_load(path)
    assert torch.equal(loaded["w"], ckpt["w"]) and np.array_equal(loaded["a"], ckpt["a"])
    assert loaded["best"] == 0.5 and loaded["rec"].dtype == ckpt["rec"].dtype
    assert np.array_equal(loaded["numpy_rng"][1], ckpt["numpy_rng"][1])
    # numpy's reconstructors were safe globals for that one call only
    assert {id(x) for x in torch.serialization.get_safe_globals()} == before
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)


def test_safe_load_numpy_joblib_safetensors(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.arange(5))
    assert np.array_equal(safe_load(tmp_path / "a.npy"), np.arange(5))
    np.savez(tmp_path / "b.npz", x=np.ones(2))
    assert np.array_equal(safe_load(tmp_path / "b.npz")["x"], np.ones(2))
    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(max_iter=300).fit(x, y)
    joblib.dump(est, tmp_path / "m.joblib", compress=3)
    assert np.array_equal(safe_load(tmp_path / "m.joblib").predict(x), est.predict(x))
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInput, match="allow_pickle=False"):
        safe_load(tmp_path / "o.npy")  # scanned clean, but never loaded with pickle


def test_convert_state_dict_to_safetensors(tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    result = convert(src=tmp_path / "sd.pt", dst=tmp_path / "sd.safetensors")
    assert result.tensors == 4
    from safetensors.torch import load_file

    loaded = load_file(str(tmp_path / "sd.safetensors"))
    for k, v in net.state_dict().items():
        assert torch.equal(loaded[k], v)
    assert scan(paths=[tmp_path / "sd.safetensors"]).files[0].format == "safetensors"


def test_convert_refuses_unsafe_and_non_state_dicts(malicious, tmp_path) -> None:
    path, marker = malicious
    with pytest.raises(UnsafeArtifact):
        convert(src=path, dst=tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists() and not marker.exists()
    torch.save({"w": torch.ones(1), "note": "text"}, tmp_path / "mixed.pt")
    with pytest.raises(InvalidInput, match="not a tensor"):
        convert(src=tmp_path / "mixed.pt", dst=tmp_path / "y.safetensors")


def test_inspect_artifact_and_entry_point(malicious, tmp_path) -> None:
    path, _ = malicious
    (eps,) = [ep for ep in entry_points(group="bastion.inspectors") if ep.name == "scan"]
    inspector = eps.load()
    from bastion.scan.stored import registry_inspector

    assert inspector is registry_inspector  # path form still works; inspect_stored reads the stored version
    with pytest.raises(UnsafeArtifact, match=r"os\.system"):
        inspector(path.parent)
    clean = tmp_path / "clean"
    clean.mkdir()
    np.save(clean / "w.npy", np.ones(3))
    assert inspector(clean) is None


def test_timeout_bounds_the_parse_not_a_running_call(tmp_path) -> None:
    """The stated limit of ``timeout_s`` (docstring, README): it is checked on every read of a pickle or a
    decompressor, so it stops a slow parse; it cannot interrupt one call already running (the GIL is held),
    and ``torch.load`` has no deadline, so unbounded calls are refused before they run instead."""
    import pickle

    from bastion.scan import safe_load as load

    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps([list(range(200)) for _ in range(2000)], 4))
    with pytest.raises(UnsafeArtifact, match="longer than the time bound"):
        load(path, timeout_s=0.0)
    assert len(load(path, timeout_s=60.0)) == 2000
    joblib.dump({"a": np.arange(10)}, tmp_path / "m.joblib", compress=3)
    with pytest.raises(UnsafeArtifact, match=r"time bound|took longer"):
        load(tmp_path / "m.joblib", timeout_s=0.0)
    torch.save({"w": torch.ones(3)}, tmp_path / "w.pt")
    assert torch.equal(load(tmp_path / "w.pt", timeout_s=0.0)["w"], torch.ones(3))  # no deadline in torch
    doc = " ".join((load.__doc__ or "").split())
    assert "cannot be interrupted in-process" in doc and "``torch.load`` has no deadline" in doc
