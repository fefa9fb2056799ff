"""Structure checks of the non-pickle formats: safetensors, GGUF, ONNX, Keras (.keras / .h5), NumPy."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bastion.scan import Verdict, scan


# -- safetensors ------------------------------------------------------------------------------------------
def _st(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


GOOD = {
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]},
}


def test_safetensors_valid(write) -> None:
    assert scan(paths=[write("ok.bin", _st(GOOD, b"\x00" * 11))]).verdict is Verdict.safe


@pytest.mark.parametrize(
    ("header", "data", "why"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 4, "outside"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\x00" * 8, "byte span"),
        ({"a": {"dtype": "PY_OBJECT", "shape": [1], "data_offsets": [0, 8]}}, b"\x00" * 8, "unknown dtype"),
        (
            {
                "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
            },
            b"\x00" * 6,
            "overlaps",
        ),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\x00" * 4, "gap"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\x00" * 4, "does not end"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2], "x": 1}}, b"\x00" * 2, "unexpected"),
        ({"__metadata__": {"k": 1}}, b"", "metadata"),
        ({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b"", "shape"),
    ],
)
def test_safetensors_invalid(write, header, data, why) -> None:
    report = scan(paths=[write("bad.safetensors", _st(header, data))])
    assert report.verdict is Verdict.error
    assert why in report.files[0].errors[0].message


def test_safetensors_header_cap(write) -> None:
    blob = struct.pack("<Q", 200 << 20) + b"{" + b" " * 64
    assert scan(paths=[write("cap.safetensors", blob)]).verdict is Verdict.error


# -- GGUF -------------------------------------------------------------------------------------------------
def _gguf_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf(kvs: list[tuple[str, int, bytes]], tensors: int = 1, n_kv: int | None = None) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kvs) if n_kv is None else n_kv)
    for key, kind, value in kvs:
        out += _gguf_str(key) + struct.pack("<I", kind) + value
    for i in range(tensors):
        out += _gguf_str(f"t{i}") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<I", 0)
        out += struct.pack("<Q", 32 * i)
    out += b"\x00" * (-len(out) % 32) + b"\x00" * 32 * tensors
    return out


def test_gguf(write) -> None:
    ok = _gguf([("general.name", 8, _gguf_str("tiny")), ("general.alignment", 4, struct.pack("<I", 32))])
    assert scan(paths=[write("m.gguf", ok)]).verdict is Verdict.safe
    assert scan(paths=[write("n.gguf", _gguf([], n_kv=1 << 40))]).verdict is Verdict.error
    long_str = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40)
    assert scan(paths=[write("s.gguf", long_str)]).verdict is Verdict.error
    template = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    bad = _gguf([("tokenizer.chat_template", 8, _gguf_str(template))])
    report = scan(paths=[write("t.gguf", bad)])
    assert report.files[0].issues[0].rule == "gguf-template-injection"
    assert (
        scan(paths=[write("v.gguf", b"GGUF" + struct.pack("<I", 99) + b"\x00" * 16)]).verdict is Verdict.error
    )


# -- ONNX -------------------------------------------------------------------------------------------------
def _onnx(location: str | None) -> bytes:
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if location is not None:
        w.ClearField("float_data")
        w.data_location = TensorProto.EXTERNAL
        w.external_data.add(key="location", value=location)
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[w],
    )
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("location", ["/etc/passwd", "../../secrets.bin", "..\\x.bin", "C:/w.bin"])
def test_onnx_external_data_escape(write, location) -> None:
    report = scan(paths=[write("model.onnx", _onnx(location))])
    assert report.files[0].format == "onnx"
    assert report.files[0].issues[0].rule == "onnx-external-data"


def test_onnx_benign(write) -> None:
    assert scan(paths=[write("model.onnx", _onnx(None))]).verdict is Verdict.safe
    path = write("ext/model.onnx", _onnx("weights.bin"))
    (path.parent / "weights.bin").write_bytes(b"\x00" * 8)
    report = scan(paths=[path])
    assert report.verdict is Verdict.safe, report.files
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].name == "w"


# -- Keras ------------------------------------------------------------------------------------------------
def _layer(class_name: str, module: str = "keras.layers", config: object = None, **extra: object) -> dict:
    return {"module": module, "class_name": class_name, "config": config or {"name": "l"}, **extra}


def _keras_zip(config: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        weights = io.BytesIO()
        with h5py.File(weights, "w") as h5:
            h5.create_dataset("layers/dense/vars/0", data=np.ones((2, 2)))
        zf.writestr("model.weights.h5", weights.getvalue())
    return buf.getvalue()


def _model(*layers: dict) -> dict:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"layers": list(layers)},
        "registered_name": None,
    }


BENIGN = _model(
    _layer("InputLayer"),
    _layer("Dense", config={"units": 2, "activation": "relu"}),
    _layer("function", module="keras.activations", config="softmax"),
)


def test_keras_benign(write) -> None:
    report = scan(paths=[write("model.keras", _keras_zip(BENIGN))])
    assert report.files[0].format == "keras"
    assert report.verdict is Verdict.safe, report.files[0]


@pytest.mark.parametrize(
    ("layer", "rule"),
    [
        (
            _layer(
                "Lambda", config={"function": {"class_name": "__lambda__", "config": {"code": "4wEAAA=="}}}
            ),
            "keras-lambda",
        ),
        (_layer("system", module="os"), "keras-module-injection"),  # CVE-2025-1550 shape
        (_layer("function", module="keras.utils", config="get_file"), "keras-module-injection"),
        (
            _layer("MyLayer", module="my_package.layers", registered_name="my_package>MyLayer"),
            "keras-module-injection",
        ),
        (_layer("Dense", registered_name="Custom>Dense"), "keras-custom-object"),
    ],
)
def test_keras_unsafe(write, layer, rule) -> None:
    report = scan(paths=[write("model.keras", _keras_zip(_model(layer)))])
    assert rule in {i.rule for i in report.files[0].issues}
    assert report.files[0].issues[0].member == "config.json"


def test_keras_h5_model_config(write, tmp_path) -> None:
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(_model(_layer("Lambda")))
    report = scan(paths=[path])
    assert report.files[0].format == "keras-h5"
    assert report.files[0].issues[0].rule == "keras-lambda"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(BENIGN)
    assert scan(paths=[path]).verdict is Verdict.safe


# -- NumPy ------------------------------------------------------------------------------------------------
def test_npy_truncated_and_bad_header(write) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ones(100))
    assert scan(paths=[write("t.npy", buf.getvalue()[:-10])]).verdict is Verdict.error
    header = b"{'descr': __import__('os'), 'fortran_order': False, 'shape': (1,), }\n"
    bad = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    assert scan(paths=[write("h.npy", bad)]).verdict is Verdict.error
