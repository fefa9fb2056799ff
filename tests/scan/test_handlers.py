"""Conformance of every registered format handler (the contract in :mod:`bastion.scan.interface`).

Each registered handler must have a sample pair here (the test fails for a handler without one, so a new
family cannot plug in untested): its benign sample is matched by it and scans clean, its malicious sample is
flagged, and no truncation or corruption of either makes the walk raise.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
from collections.abc import Callable

import h5py
import numpy as np
import pytest
from onnx import TensorProto, helper
from tests._support.archives import tar_bytes

from bastion.errors import InvalidInput
from bastion.scan import Verdict, scan_bytes
from bastion.scan import format_handlers as handlers
from bastion.scan import register_format_handler as register
from bastion.scan import unregister_format_handler as unregister
from bastion.scan._formats import handler
from bastion.scan._io import Source
from bastion.scan._model import Severity
from bastion.scan.interface import Walk

from .conftest import call, g, npy_object, s, torch_zip, wrap

EVIL = wrap(call(g("os", "system", 2), s("id")), 2)
BENIGN_PICKLE = wrap(b"}" + s("lr") + b"K\x01s", 2)


def _gguf(template: str) -> bytes:
    key, val = b"tokenizer.chat_template", template.encode()
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(val)) + val
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv


def _h5(config: dict | None) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("w", data=np.arange(4, dtype=np.float32))
        if config is not None:
            h5.attrs["model_config"] = json.dumps(config)
    return buf.getvalue()


_LAMBDA = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}


def _st(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _onnx(location: str | None) -> bytes:
    t = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if location is not None:
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [t],
    )
    return helper.make_model(graph).SerializeToString()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.int16))
    return buf.getvalue()


def _torch_save() -> bytes:
    """A real torch zip: its tensor record is referenced by data.pkl (an unreferenced one is not skipped)."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    return buf.getvalue()


def _zfile(pkl: bytes) -> bytes:
    """joblib's old compat format: ``ZF``, the hex length padded to 19 bytes, a zlib stream."""
    import zlib

    return b"ZF" + hex(len(pkl)).encode().ljust(19) + zlib.compress(pkl)


#: handler name -> (benign sample, malicious sample); malicious = flagged, or refused (never "safe")
SAMPLES: dict[str, tuple[Callable[[], bytes], Callable[[], bytes]]] = {
    "zip": (lambda: _torch_save(), lambda: torch_zip(EVIL)),
    "npy": (_npy, lambda: npy_object(EVIL)),
    "gguf": (lambda: _gguf("{{ messages }}"), lambda: _gguf("{{ ''.__class__.__mro__ }}")),
    "hdf5": (lambda: _h5(None), lambda: _h5(_LAMBDA)),
    "compressed": (lambda: gzip.compress(BENIGN_PICKLE), lambda: gzip.compress(EVIL)),
    "joblib-compat": (lambda: _zfile(BENIGN_PICKLE), lambda: _zfile(EVIL)),
    "lz4": (lambda: b"\x04\x22\x4d\x18" + b"\x00" * 16, lambda: b"\x04\x22\x4d\x18" + EVIL),
    "tar": (lambda: tar_bytes({"a/model.pkl": BENIGN_PICKLE}), lambda: tar_bytes({"a/model.pkl": EVIL})),
    "safetensors": (
        lambda: _st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8),
        lambda: _st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\x00" * 8),
    ),
    "pickle": (lambda: BENIGN_PICKLE, lambda: EVIL),
    "onnx": (lambda: _onnx(None), lambda: _onnx("../../etc/passwd")),
    "text": (lambda: b"# model card\n", lambda: json.dumps(_LAMBDA).encode()),
}
#: families bastion recognises only to refuse them (exit 2): their benign sample is an error, not safe
REFUSED = {"lz4"}
NAMES = [h.name for h in handlers()]


def test_every_registered_handler_has_samples() -> None:
    assert len(NAMES) == len(set(NAMES)), "handler names must be unique"
    assert set(NAMES) == set(SAMPLES), "add a benign and a malicious sample for every registered handler"


@pytest.mark.parametrize("name", NAMES)
def test_benign_sample_is_matched_and_scans_clean(name: str) -> None:
    data = SAMPLES[name][0]()
    h = handler(name)
    assert h.matches(data[:512], Source(io.BytesIO(data)))
    first = next(x for x in handlers() if x.matches(data[:512], Source(io.BytesIO(data))))
    assert first.name == name, f"{first.name} is asked before {name} and takes its sample"
    report = scan_bytes(data)
    if name in REFUSED:
        assert report.verdict is Verdict.error and not report.issues
    else:
        assert report.verdict is Verdict.safe, (report.issues, report.errors)


@pytest.mark.parametrize("name", NAMES)
def test_malicious_sample_is_never_safe(name: str) -> None:
    report = scan_bytes(SAMPLES[name][1]())
    assert report.verdict is not Verdict.safe
    if name not in REFUSED | {"safetensors"}:  # safetensors has no code route: a bad layout is refused
        assert report.issues, report.errors


@pytest.mark.parametrize("name", NAMES)
def test_truncated_and_corrupted_samples_never_raise(name: str) -> None:
    for data in (SAMPLES[name][0](), SAMPLES[name][1]()):
        cuts = {1, 8, 16, len(data) // 2, len(data) - 1}
        variants = [data[:n] for n in cuts if 0 < n < len(data)]
        for at in (4, len(data) // 3, len(data) - 8):
            if 0 <= at < len(data):
                variants.append(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
        for v in variants:
            for h in handlers():
                h.matches(v[:512], Source(io.BytesIO(v)))  # never raises
            report = scan_bytes(v)  # contained: a finding, an error or a verdict, never an exception
            assert report.verdict in set(Verdict)


class _Toy:
    """A plug-in family: files starting with ``TOYF`` carry a pickle after the magic."""

    name = "toy"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:4] == b"TOYF"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        walk.scan(src.window(4, src.size - 4), f"{member}!<toy>" if member else "<toy>", depth + 1)
        return "toy"


def test_a_new_handler_plugs_in_through_the_registry() -> None:
    data = b"TOYF" + EVIL
    before = scan_bytes(data)
    assert before.format != "toy"
    register(_Toy(), before="pickle")
    try:
        with pytest.raises(InvalidInput):
            register(_Toy())  # names are unique
        report = scan_bytes(data)
        assert report.format == "toy"
        assert any(i.callable == "os.system" and i.severity is Severity.critical for i in report.issues)
    finally:
        unregister("toy")
    assert "toy" not in [h.name for h in handlers()]
