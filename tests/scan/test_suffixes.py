"""Every suffix the shipped loaders accept is routed to a handler; unknown suffixes are sniffed by content.

For each suffix (torch, joblib and its compressors, pickle, NumPy, Keras, HDF5, ONNX, GGUF, safetensors,
skops, and names no loader claims) a malicious payload in the form that suffix's loader reads is written
under that name: ``bastion scan`` must exit 1 and ``safe_load`` must refuse it. The routing never looks at
the suffix (the same bytes under a misleading name are judged alike: tests/scan/test_malicious.py).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.errors import UnsafeArtifact
from bastion.scan import safe_load, scan

from .conftest import (
    call,
    g,
    joblib_object_array,
    legacy_torch,
    legacy_torch_tar,
    npy_object,
    npz,
    s,
    torch_zip,
    wrap,
)
from .test_handlers import _LAMBDA, _gguf, _h5, _onnx

EVIL = wrap(call(g("os", "system", 2), s("id")), 2)
EVIL4 = wrap(call(g("os", "system", 4), s("id")), 4)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


_SKOPS_SCHEMA = {
    "__class__": "system",
    "__module__": "posix",
    "__loader__": "FunctionNode",
    "content": {},
    "protocol": 2,
    "_skops_version": "0.10.0",
}

#: suffix -> malicious bytes in the form that suffix's loader reads
CASES: dict[str, Callable[[], bytes]] = {
    # torch.load
    ".pt": lambda: torch_zip(EVIL),
    ".pth": lambda: torch_zip(EVIL),
    ".bin": lambda: torch_zip(EVIL),
    ".ckpt": lambda: torch_zip(EVIL),
    ".pt.legacy": lambda: legacy_torch(EVIL),
    ".tar": lambda: legacy_torch_tar(EVIL),
    # pickle.load / joblib.load (and joblib's compressors, chosen by suffix when writing)
    ".pkl": lambda: EVIL,
    ".pickle": lambda: EVIL4,
    ".joblib": lambda: joblib_object_array(EVIL4),
    ".z": lambda: zlib.compress(EVIL4),
    ".gz": lambda: gzip.compress(EVIL4),
    ".bz2": lambda: bz2.compress(EVIL4),
    ".xz": lambda: lzma.compress(EVIL4),
    ".lzma": lambda: lzma.compress(EVIL4, format=lzma.FORMAT_ALONE),
    # numpy.load
    ".npy": lambda: npy_object(EVIL),
    ".npz": lambda: npz({"arr_0.npy": npy_object(EVIL)}),
    # keras.saving.load_model
    ".keras": lambda: _zip({"config.json": json.dumps(_LAMBDA).encode(), "metadata.json": b"{}"}),
    ".h5": lambda: _h5(_LAMBDA),
    ".hdf5": lambda: _h5(_LAMBDA),
    # onnx.load, GGUF runtimes, safetensors, skops
    ".onnx": lambda: _onnx("../../../etc/passwd"),
    ".gguf": lambda: _gguf("{{ cycler.__init__.__globals__.os.popen('id').read() }}"),
    ".safetensors": lambda: EVIL,  # a pickle named as safetensors: judged by its bytes
    ".skops": lambda: _zip({"schema.json": json.dumps(_SKOPS_SCHEMA).encode()}),
    # names no loader claims: sniffed, never skipped
    ".weird": lambda: torch_zip(EVIL),
    ".model": lambda: EVIL4,
    "": lambda: gzip.compress(EVIL4),
}


@pytest.mark.parametrize("suffix", sorted(CASES))
def test_malicious_payload_is_flagged_under_its_loaders_suffix(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(CASES[suffix]())
    report = scan(paths=[path])
    assert report.exit_code == 1, report.to_dict()
    with pytest.raises(UnsafeArtifact):
        safe_load(path)


def test_directory_scan_reaches_every_file_whatever_its_name(tmp_path: Path) -> None:
    for suffix, build in CASES.items():
        (tmp_path / f"m{suffix}").write_bytes(build())
    report = scan(paths=[tmp_path])
    assert len(report.files) == len(CASES)
    assert all(f.issues for f in report.files), [f.path for f in report.files if not f.issues]


@pytest.mark.parametrize("suffix", [".pt", ".joblib", ".weird", ""])
def test_cli_exit_code_per_suffix(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(CASES[suffix]())
    assert run(["scan", str(path)]) == 1
    assert "UNSAFE" in capsys.readouterr().out
