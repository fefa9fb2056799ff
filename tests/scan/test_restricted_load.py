"""The allow-list is enforced inside the loader: these tests bypass the static scan on purpose.

Each attack is fed straight to the loader ``safe_load`` uses (the restricted unpickler, or torch's
``weights_only`` loader with bastion's safe globals), so they prove that a file the scanner misjudged still
cannot execute anything; the matching benign files load.
"""

from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from bastion.errors import UnsafeArtifact
from bastion.scan import ScanConfig, safe_load
from bastion.scan._load import _load_pickle, _load_torch
from bastion.scan._unpickler import LoadRefused, restricted_load, restricted_loads


def _touch(craft, marker: Path, proto: int = 2) -> bytes:
    return craft.wrap(craft.call(craft.g("os", "system", proto), craft.s(f"touch {marker}")), proto)


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_restricted_unpickler_refuses_every_payload(craft, tmp_path, proto) -> None:
    for payload in craft.PAYLOADS:
        data = payload.pickle(max(proto, 2))
        with pytest.raises(UnsafeArtifact):
            restricted_loads(data)


def test_nothing_runs_when_the_scan_is_bypassed(craft, tmp_path) -> None:
    marker = tmp_path / "pwned"
    data = _touch(craft, marker)
    with pytest.raises(LoadRefused, match=r"os\.system"):
        restricted_loads(data)
    path = tmp_path / "m.pt"
    path.write_bytes(craft.torch_zip(data))
    with pytest.raises(UnsafeArtifact, match=r"os\.system"):
        _load_torch(str(path), "torch-zip", frozenset())
    assert not marker.exists()


def test_re_exports_and_modules_are_not_importable() -> None:
    for module, name in [
        ("sklearn.datasets._covtype", "GzipFile"),
        ("sklearn.datasets._base", "NamedTemporaryFile"),
        ("torch.nn.modules.linear", "F"),
        ("torch.jit._pickle", "restore_type_tag"),
        ("builtins", "getattr"),
    ]:
        data = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
        with pytest.raises(LoadRefused, match="allow-list"):
            restricted_loads(data)


def test_mutating_an_imported_or_shared_object_is_refused() -> None:
    # BUILD on an allow-listed class (class-attribute overwrite)
    build_on_class = b"\x80\x02ccollections\nOrderedDict\n}(X\x03\x00\x00\x00fooK\x01ub."
    with pytest.raises(LoadRefused, match="did not build"):
        restricted_loads(build_on_class)
    # numpy.dtype('f8', False, False) returns numpy's shared float64 descriptor: BUILD on it is refused
    state = b"(K\x03X\x01\x00\x00\x00>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb."
    shared = b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x89\x87R" + state
    with pytest.raises(LoadRefused, match="did not build"):
        restricted_loads(shared)
    assert np.dtype("f8").byteorder == "="
    # the same with copy=True is a fresh descriptor: fine
    fresh = shared.replace(b"\x89\x89\x87", b"\x89\x88\x87")
    assert restricted_loads(fresh) == np.dtype(">f8")


def test_calls_of_computed_values_and_class_results_are_refused() -> None:
    # REDUCE whose callee is the result of another call (OrderedDict() called again)
    computed = b"\x80\x02ccollections\nOrderedDict\n)R)R."
    with pytest.raises(LoadRefused, match="not an allow-listed global"):
        restricted_loads(computed)
    # list(range(huge)): an argument that materialises without bound
    blowup = b"\x80\x02c__builtin__\nlist\nc__builtin__\nxrange\nJ\xff\xff\xff\x7f\x85R\x85R."
    with pytest.raises(LoadRefused, match="range or iterator"):
        restricted_loads(blowup)


def test_python2_names_and_plain_values_load() -> None:
    value = {"r": range(3), "s": {1, 2}, "f": frozenset([3]), "b": b"\x00\xff", "c": 1j, "t": (1, "a")}
    for proto in (0, 1, 2, 3, 4, 5):
        assert restricted_loads(pickle.dumps(value, protocol=proto)) == value
    assert restricted_loads(b"c__builtin__\nxrange\n(I0\nI3\nI1\ntR.") == range(3)


def test_joblib_arrays_and_exact_construction(tmp_path) -> None:
    obj = {
        "a": np.arange(6.0).reshape(2, 3),
        "f": np.asfortranarray(np.ones((2, 3))),
        "o": np.array([1, "x"], dtype=object),
    }
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    loaded = restricted_loads(buf.getvalue(), joblib=True)
    for k in obj:
        assert np.array_equal(loaded[k], obj[k])
    # protocol 1 builds the wrapper through copyreg._reconstructor: joblib still expands it, bastion refuses
    smuggled = _wrapper_via_reconstructor()
    assert joblib.load(io.BytesIO(smuggled)).tolist() == [0.0, 1.0, 2.0]  # what joblib itself does with it
    with pytest.raises(LoadRefused, match="form joblib does not write"):
        restricted_loads(smuggled, joblib=True)


def _wrapper_via_reconstructor() -> bytes:
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (3,), "C", np.dtype("<f8"))
    head = pickle.dumps(wrapper, protocol=1)
    assert b"_reconstructor" in head and head.endswith(b"b.")
    return head[:-1] + b"\x00" + np.arange(3.0).tobytes() + b"."


def test_decompression_is_bounded(tmp_path) -> None:
    buf = io.BytesIO()
    joblib.dump(np.zeros(10), buf)
    # a valid joblib stream followed by a zlib bomb (what joblib's reader would go on inflating)
    bomb = zlib.compress(buf.getvalue()) + zlib.compress(b"\x00" * (64 << 20), 9)
    path = tmp_path / "bomb.joblib"
    path.write_bytes(bomb)
    cfg = ScanConfig(max_archive_bytes=32 << 20)
    with pytest.raises(UnsafeArtifact):
        _load_pickle(str(path), path.stat().st_size, "zlib:joblib", cfg, frozenset(), 1e18)
    with pytest.raises(UnsafeArtifact):
        safe_load(path, config=cfg)


def test_deadline() -> None:
    data = pickle.dumps(list(range(100_000)), protocol=2)
    with pytest.raises(LoadRefused, match="time bound"):
        restricted_load(io.BytesIO(data), size=len(data), timeout_s=-1.0)


def test_user_extension_is_exact(tmp_path) -> None:
    data = b"\x80\x02cpathlib\nPurePosixPath\nX\x01\x00\x00\x00a\x85R."
    with pytest.raises(LoadRefused):
        restricted_loads(data)
    assert str(restricted_loads(data, extra=frozenset({"pathlib:PurePosixPath"}))) == "a"
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeArtifact):
        safe_load(path)
    assert str(safe_load(path, config=ScanConfig(extra_allow=("pathlib:PurePosixPath",)))) == "a"


def test_torch_checkpoint_with_namespace_args(tmp_path) -> None:
    import argparse

    ckpt = {"model": torch.nn.Linear(2, 2).state_dict(), "args": argparse.Namespace(lr=0.1, epochs=3)}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    loaded = safe_load(tmp_path / "ckpt.pt")
    assert loaded["args"].lr == 0.1 and torch.equal(loaded["model"]["weight"], ckpt["model"]["weight"])


def test_cli_allow_extends_the_list_exactly(tmp_path: Path) -> None:
    from bastion.cli import run

    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x02cpathlib\nPurePosixPath\nX\x01\x00\x00\x00a\x85R.")
    assert run(["scan", str(path)]) == 1
    assert run(["scan", "--allow", "pathlib:PurePosixPath", str(path)]) == 0
    assert run(["scan", "--allow", "pathlib:PurePath", str(path)]) == 1  # exact pairs only
    assert run(["scan", "--allow", "not a name", str(path)]) == 2
