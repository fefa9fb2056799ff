"""Differential oracle (issue 19): whenever CPython's, joblib's, numpy's or torch's reader would reach a
callable outside the allow-list, ``bastion scan`` exits 1 or 2 and ``safe_load`` refuses.

The oracle replays a file with the real readers (C ``pickle.Unpickler``, pure-Python ``pickle._Unpickler``,
joblib's ``NumpyUnpickler``, ``numpy.load`` and ``torch.load(weights_only=True)`` over the whole container)
with every import replaced by a recording stub (:mod:`bastion.scan._oracle`), so nothing real is called; and
``numpy.load(allow_pickle=False)``, the reader ``safe_load`` uses for NumPy files, must never reach pickle.
Inputs: the checked-in regression files (one or more per root-cause class, plus every fuzzer counterexample)
and Hypothesis-generated pickles in several containers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.cli import run
from bastion.errors import BastionError
from bastion.scan import Verdict, safe_load, scan_bytes
from bastion.scan._allowlist import is_allowed
from bastion.scan._oracle import Recording, _stub_type, replay, replay_numpy, replay_torch
from bastion.scan._unpickler import LoadRefused, restricted_loads

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
_REAL_FOR_JOBLIB = {"joblib.numpy_pickle:NumpyArrayWrapper", "numpy:ndarray", "numpy:dtype"}


def joblib_replay(data: bytes) -> Recording:
    """joblib.load's own reader (real array wrapper and numpy dtypes; every other import a stub)."""
    import importlib

    from joblib.numpy_pickle import NumpyUnpickler

    rec = Recording()

    class Stubbed(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            key = f"{module}:{name}"
            if key in _REAL_FOR_JOBLIB:
                return getattr(importlib.import_module(module), name)
            rec.globals.append(key)
            return _stub_type(rec, key)

    try:
        Stubbed("", io.BytesIO(data), ensure_native_byte_order=False).load()
    except Exception as exc:  # every way joblib rejects it is a result
        rec.error = type(exc).__name__
    return rec


def dangerous(rec: Recording) -> bool:
    bad = [g for g in rec.globals if not is_allowed(*g.split(":", 1))]
    return bool(bad) or any("()" not in m.split(" ")[0] for m in rec.mutations)


def _views(data: bytes) -> list[bytes]:
    """The pickle streams a loader could read out of ``data`` (raw, decompressed)."""
    views = [data]
    for opener in (zlib.decompress, gzip.decompress):
        try:
            views.append(opener(data))
        except Exception:  # not that kind of stream
            continue
    return views


def oracle_says_dangerous(data: bytes) -> bool:
    for view in _views(data):
        for rec in (replay(view), replay(view, pure=True), joblib_replay(view)):
            if dangerous(rec):
                return True
    return loaders_say_dangerous(data)


def loaders_say_dangerous(data: bytes) -> bool:
    """The container readers: ``numpy.load`` (pickle allowed) and ``torch.load(weights_only=True)``."""
    return dangerous(replay_numpy(data, allow_pickle=True)) or dangerous(replay_torch(data))


def _refuses(path: Path) -> bool:
    try:
        safe_load(path)
    except BastionError:
        return True
    return False


@pytest.mark.parametrize("path", sorted(REGRESSIONS.iterdir()), ids=lambda p: p.name)
def test_regression_file(path: Path, tmp_path: Path) -> None:
    assert run(["scan", "--format", "json", str(path)]) in (1, 2)
    assert _refuses(path)
    assert not Path("/tmp/bastion-pwned").exists()
    if path.name.startswith(("c1-", "c2-", "c3-", "c4-", "fuzz-")):
        assert oracle_says_dangerous(path.read_bytes())  # a real attack under some reader, not a strawman


# -- generated pickles --------------------------------------------------------------------------------------
_GLOBALS = [
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("__builtin__", "xrange"),
    ("numpy", "dtype"),
    ("copyreg", "_reconstructor"),
    ("os", "system"),
    ("builtins", "eval"),
    ("builtins", "getattr"),
    ("torch.jit._pickle", "restore_type_tag"),
    ("torch.nn.modules.linear", "F"),
    ("sklearn.datasets._covtype", "GzipFile"),
    ("subprocess", "Popen"),
]


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _global(pair: tuple[str, str], form: int) -> bytes:
    module, name = pair
    if form == 0:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    return _unicode(module) + _unicode(name) + b"\x93"


_ATOMS = st.one_of(
    st.tuples(st.sampled_from(_GLOBALS), st.integers(0, 1)).map(lambda t: _global(*t)),
    st.sampled_from(
        [b"I0x1\n", b"I+1\n", b"I010\n", b"I1_0\n", b"K\x05", b"L5L\n", b"N", b"\x88", b"}", b"]", b")", b"("]
    ),
    st.sampled_from(
        [b"t", b"\x85", b"\x86", b"R", b"b", b"s", b"a", b"0", b"2", b"\x94", b"h\x00", b"\x81", b"u"]
    ),
    st.text(alphabet="abc_", max_size=6).map(_unicode),
    st.sampled_from([b"C\x02hi", b"S'x'\n", b"V\xe9\n", b"\x95\x10\x00\x00\x00\x00\x00\x00\x00"]),
)
_PICKLES = st.tuples(st.sampled_from([b"", b"\x80\x02", b"\x80\x04"]), st.lists(_ATOMS, max_size=14)).map(
    lambda t: t[0] + b"".join(t[1]) + b"."
)


def _wrap(pkl: bytes, how: int) -> bytes:
    """The pickle as a loader finds it: raw, zlib/gzip (joblib), torch zip, npy object array, tar member."""
    if how == 1:
        return zlib.compress(pkl)
    if how == 2:
        return gzip.compress(pkl)
    if how == 3:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", pkl)
            zf.writestr("archive/version", b"3\n")
        return buf.getvalue()
    if how == 4:
        buf = io.BytesIO()
        header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue() + pkl
    if how == 5:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("model/weights.pkl")
            info.size = len(pkl)
            tf.addfile(info, io.BytesIO(pkl))
        return buf.getvalue()
    return pkl


def _check(pkl: bytes, how: int) -> None:
    data = _wrap(pkl, how)
    assert "pickle.load" not in replay_numpy(data, allow_pickle=False).calls  # safe_load's NumPy reader
    if not (oracle_says_dangerous(pkl) or loaders_say_dangerous(data)):
        return
    report = scan_bytes(data)
    refused = True
    try:
        restricted_loads(pkl)
        refused = False
    except LoadRefused:
        pass
    except Exception:  # any failure to load is a refusal too
        pass
    if report.verdict is Verdict.safe or not refused:
        name = f"fuzz-{hashlib.sha256(data).hexdigest()[:16]}.bin"
        (REGRESSIONS / name).write_bytes(data)  # kept as a regression file
        raise AssertionError(f"oracle reached a disallowed callable but scan={report.verdict}; kept {name}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pkl=_PICKLES, how=st.integers(0, 5))
def test_differential_fuzz(pkl: bytes, how: int) -> None:
    _check(pkl, how)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pkl=_PICKLES, how=st.integers(0, 5))
def test_differential_fuzz_long(pkl: bytes, how: int) -> None:
    _check(pkl, how)


def test_loader_replays_see_what_the_loaders_reach() -> None:
    """The numpy and torch replays are real readers: they reach what the file names, and nothing runs."""
    from .conftest import call, g, legacy_torch, npy_object, npz, s, torch_zip, wrap

    evil = wrap(call(g("builtins", "eval", 2), s("1/0")), 2)
    for data in (torch_zip(evil), legacy_torch(evil)):
        rec = replay_torch(data)
        assert rec.globals == ["builtins:eval"] and rec.calls == ["builtins:eval"]
    blocked = replay_torch(torch_zip(wrap(call(g("os", "system", 2), s("id")), 2)))
    assert not blocked.globals and not blocked.calls and blocked.error  # torch blocks os itself
    for data in (npy_object(evil), npz({"a.npy": npy_object(evil)})):
        assert replay_numpy(data, allow_pickle=True).globals == ["builtins:eval"]
        refused = replay_numpy(data, allow_pickle=False)
        assert not refused.calls and "allow_pickle" in (refused.error or "")
    assert loaders_say_dangerous(torch_zip(evil)) and not loaders_say_dangerous(torch_zip(wrap(b"}", 2)))
