"""Builders of the regression files for issue 19's root causes (one or more per class).

``python tests/scan/regressions.py`` rewrites ``tests/scan/regressions/*.bin``; the test suite reads the
checked-in files (and the fuzzer's counterexamples, saved beside them). Each payload only *names* callables:
nothing here imports or runs them. Where a payload would run, it would ``touch /tmp/bastion-pwned``.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "regressions"
CMD = b"touch /tmp/bastion-pwned"


def g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s(text: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(text)) + text  # BINBYTES


def u(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


SYSTEM = g("os", "system") + b"(" + u(CMD.decode()) + b"tR"
PAYLOAD = SYSTEM + b"0"  # call, then POP: append anywhere a pickle continues


# -- 1: re-exports admitted by pattern ------------------------------------------------------------------
def reexport(module: str, name: str, *args: bytes) -> bytes:
    return b"\x80\x02" + g(module, name) + b"(" + b"".join(args) + b"tR."


# -- 2: identity-like callables laundering a global -------------------------------------------------------
def launder(module: str, name: str, attr: str) -> bytes:
    target = g("torch.jit._pickle", "restore_type_tag") + b"(" + g(module, name) + u("x") + b"tR"
    return b"\x80\x02" + target + b"}" + u(attr) + g("builtins", "len") + b"sb."


# -- 3: joblib array skipping --------------------------------------------------------------------------
def _wrapper(dtype_args: bytes, state: bytes, shape: bytes, *, align: bool = True) -> bytes:
    body = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81}("
    body += u("subclass") + g("numpy", "ndarray") + u("shape") + shape + u("order") + u("C")
    body += u("dtype") + g("numpy", "dtype") + dtype_args + b"R" + state + b"b"
    body += u("allow_mmap") + b"\x88"
    if align:
        body += u("numpy_array_alignment_bytes") + b"K\x10"
    return body + b"ub"


_F8_STATE = (
    b"(K\x03u" + u("<")[1:] if False else b"(K\x03" + u("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
)


def joblib_elsize_ignored() -> bytes:
    """dtype f8 with an item-size field of 4000 that numpy ignores: joblib reads 8 bytes, then opcodes."""
    state = b"(K\x03" + u("<") + b"NNNJ\xa0\x0f\x00\x00J\xff\xff\xff\xffK\x00t"
    head = b"\x80\x02" + _wrapper(u("f8") + b"\x89\x88\x87", state, b"K\x01\x85")
    return head + b"\x00" + b"\x00" * 8 + PAYLOAD + b"N." + b"\x00" * 4000


def joblib_unicode_itemsize() -> bytes:
    """U10 is 40 bytes per item by numpy's rules (a scanner reading '10' skips too little or too much)."""
    state = b"(K\x03" + u("<") + b"NNNK(K\x04K\x08t"
    head = b"\x80\x02" + _wrapper(u("U10") + b"\x89\x88\x87", state, b"K\x01\x85")
    return head + b"\x00" + "abcdefghij".encode("utf-32-le") + PAYLOAD + b"N."


def joblib_nested_wrapper() -> bytes:
    """A wrapper inside the object-array pickle: joblib reads that inner pickle with a plain unpickler."""
    inner_state = _F8_STATE
    inner = (
        b"\x80\x02" + _wrapper(u("f8") + b"\x89\x88\x87", inner_state, b"K\x64\x85") + b"0" + PAYLOAD + b"N."
    )
    inner += b"\x00" * 800
    state = b"(K\x03" + u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t"
    return b"\x80\x02" + _wrapper(u("O8") + b"\x89\x88\x87", state, b"K\x01\x85") + inner + b"."


def joblib_in_frame() -> bytes:
    """The array data inside a pickle frame: joblib reads past the frame while opcodes go on inside it."""
    body = _wrapper(u("f8") + b"\x89\x88\x87", _F8_STATE, b"K\x01\x85") + b"0" + PAYLOAD + b"N."
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body + b"\x00" * 9


def joblib_reconstructor() -> bytes:
    """The wrapper built through copyreg._reconstructor (joblib still expands it) with opcodes in its data."""
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (1,), "C", np.dtype("<f8"))
    head = pickle.dumps(wrapper, protocol=1)[:-1]
    return head + b"0" + PAYLOAD + b"N."


# -- 4: parse errors that fell back to "text" ----------------------------------------------------------
def text_int(literal: bytes) -> bytes:
    return b"I" + literal + b"\n0" + PAYLOAD + b"N."


def text_short_binbytes() -> bytes:
    return b"C\x05hello0" + PAYLOAD + b"N."


# -- 5: containers and polyglots -----------------------------------------------------------------------
def pickle_then_empty_zip() -> bytes:
    pkl = b"\x80\x02" + SYSTEM + b"."
    return pkl + b"PK\x05\x06" + b"\x00" * 16 + b"\x00\x00"


def _tar(members: dict[str, bytes], first_name: bytes | None = None, typeflag: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = bytearray(buf.getvalue())
    if first_name is not None:
        raw[0:100] = first_name.ljust(100, b"\x00")
    if typeflag is not None:
        raw[156:157] = typeflag
    raw[148:156] = b" " * 8
    raw[148:156] = f"{sum(raw[:512]):06o}\x00 ".encode()
    return bytes(raw)


def zip_reader_differential() -> bytes:
    """A whole malicious torch zip (without its end record) before a benign one.

    Python's zipfile takes the last end record and shifts every offset by the prepended length: it reads the
    benign ``data.pkl``. torch's miniz reader takes the offsets literally: it reads the malicious archive's
    central directory and ``data.pkl`` (``os.system``).
    """
    import importlib.util

    root = str(Path(__file__).resolve().parents[2])  # conftest imports tests._support when run as a script
    if root not in sys.path:
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("craft", Path(__file__).with_name("conftest.py"))
    assert spec and spec.loader
    craft = importlib.util.module_from_spec(spec)
    sys.modules["craft"] = craft  # (dataclasses look their module up)
    spec.loader.exec_module(craft)
    evil = b"\x80\x02" + g("os", "system") + u("id") + b"\x85R."
    pad = len(evil) - 16  # {'a': 1} padded with no-ops (N0 = None, POP) to the payload's length
    filler = (b"K\x000" if pad % 2 else b"") + b"N0" * ((pad - 3 * (pad % 2)) // 2)
    benign = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u" + filler + b"."
    assert len(benign) == len(evil)
    zb, ze = craft.torch_zip(benign), craft.torch_zip(evil)
    return ze[: ze.rfind(b"PK\x05\x06")] + zb


def tar_name_is_pickle() -> bytes:
    pkl = b"\x80\x02" + SYSTEM + b"."
    return _tar({"weights.bin": b"\x00" * 64}, first_name=pkl)


def tar_name_is_zlib() -> bytes:
    return _tar({"weights.bin": b"\x00" * 64}, first_name=zlib.compress(b"\x80\x02" + SYSTEM + b"."))


def tar_unknown_type() -> bytes:
    return _tar({"model.pkl": b"\x80\x02" + SYSTEM + b"."}, typeflag=b"Z")


def trailing_legacy_magic() -> bytes:
    """A pickle of torch's legacy magic (as LONG1) followed by further pickles: each is read in turn."""
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    return magic + b"\x80\x02" + SYSTEM + b"."


# -- 6: shallow format checks --------------------------------------------------------------------------
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def keras_bom_lambda() -> bytes:
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}
    return _zip({"config.json": b"\xef\xbb\xbf" + json.dumps(config).encode(), "model.weights.h5": b""})


def keras_torch_wrapper() -> bytes:
    layer = {"class_name": "TorchModuleWrapper", "module": "keras.layers", "config": {"module": "gASV..."}}
    config = {"class_name": "Sequential", "module": "keras", "config": {"layers": [layer]}}
    return _zip({"config.json": json.dumps(config).encode(), "metadata.json": b"{}"})


def keras_tfsm_layer() -> bytes:
    layer = {
        "class_name": "TFSMLayer",
        "module": "keras.layers",
        "config": {"filepath": "/tmp/evil_savedmodel"},
    }
    config = {"class_name": "Sequential", "module": "keras", "config": {"layers": [layer]}}
    return _zip({"config.json": json.dumps(config).encode(), "metadata.json": b"{}"})


def hdf5_user_block() -> bytes:
    """An HDF5 file whose 512-byte user block is a pickle (pickle.load reads it; h5py skips it)."""
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.h5"
        with h5py.File(path, "w", userblock_size=512) as h5:
            h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        data = bytearray(path.read_bytes())
    pkl = b"\x80\x02" + SYSTEM + b"."
    data[: len(pkl)] = pkl
    return bytes(data)


def _external(tensor, location: str):  # type: ignore[no-untyped-def]
    from onnx import TensorProto

    for name in ("float_data", "int64_data"):
        tensor.ClearField(name)
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def onnx_function_external() -> bytes:
    """External data read by a Constant node inside model.functions (not in the main graph)."""
    from onnx import TensorProto, helper

    weight = _external(helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0]), "../../etc/passwd")
    const = helper.make_node("Constant", [], ["c"], value=weight)
    fn = helper.make_function("custom", "F", [], ["c"], [const], opset_imports=[helper.make_opsetid("", 17)])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("F", [], ["y"], domain="custom")], "g", [], [out])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)]
    return helper.make_model(graph, functions=[fn], opset_imports=opsets).SerializeToString()


def onnx_sparse_external() -> bytes:
    """A sparse initializer whose *indices* come from an external file."""
    from onnx import TensorProto, helper

    values = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
    indices = _external(helper.make_tensor("i", TensorProto.INT64, [1], [0]), "/etc/shadow")
    sparse = helper.make_sparse_tensor(values, indices, [4])
    out = helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])
    graph = helper.make_graph([], "g", [], [out], sparse_initializer=[sparse])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def gguf_template(key: str, template: str) -> bytes:
    def gstr(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = gstr(key) + struct.pack("<I", 8) + gstr(template)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv


# -- 7: decompression without bound --------------------------------------------------------------------
def joblib_zlib_trailing_bomb() -> bytes:
    return zlib.compress(pickle.dumps({"w": [1.0]}, protocol=2)) + zlib.compress(b"\x00" * (300 << 20), 9)


def gzip_then_pickle_member() -> bytes:
    return gzip.compress(pickle.dumps([1], protocol=2)) + gzip.compress(b"\x80\x02" + SYSTEM + b".")


BUILDERS: dict[str, Callable[[], bytes]] = {
    "c1-reexport-gzipfile.pkl": lambda: reexport(
        "sklearn.datasets._covtype", "GzipFile", u("/tmp/x"), u("wb")
    ),
    "c1-reexport-tempfile.pkl": lambda: reexport("sklearn.datasets._base", "NamedTemporaryFile"),
    "c1-reexport-client.pkl": lambda: reexport("sklearn.callback._transport", "Client", u("127.0.0.1")),
    "c2-launder-torch-F.pkl": lambda: launder("torch.nn.modules.linear", "F", "linear"),
    "c2-launder-class.pkl": lambda: launder("collections", "OrderedDict", "__repr__"),
    "c3-joblib-elsize.joblib": joblib_elsize_ignored,
    "c3-joblib-U10.joblib": joblib_unicode_itemsize,
    "c3-joblib-nested.joblib": joblib_nested_wrapper,
    "c3-joblib-frame.joblib": joblib_in_frame,
    "c3-joblib-reconstructor.joblib": joblib_reconstructor,
    "c4-int-hex.pkl": lambda: text_int(b"0x1"),
    "c4-int-plus.pkl": lambda: text_int(b"+1"),
    "c4-int-underscore.pkl": lambda: text_int(b"1_0"),
    "c4-int-octal.pkl": lambda: text_int(b"010"),
    "c4-short-binbytes.pkl": text_short_binbytes,
    "c5-pickle-empty-zip.zip": pickle_then_empty_zip,
    "c5-zip-reader-differential.pt": zip_reader_differential,
    "c5-tar-name-pickle.tar": tar_name_is_pickle,
    "c5-tar-name-zlib.tar": tar_name_is_zlib,
    "c5-tar-unknown-type.tar": tar_unknown_type,
    "c5-legacy-magic-then-pickle.pt": trailing_legacy_magic,
    "c6-keras-bom-lambda.keras": keras_bom_lambda,
    "c6-keras-torch-wrapper.keras": keras_torch_wrapper,
    "c6-keras-tfsm-layer.keras": keras_tfsm_layer,
    "c6-hdf5-user-block.h5": hdf5_user_block,
    "c6-onnx-function-external.onnx": onnx_function_external,
    "c6-onnx-sparse-external.onnx": onnx_sparse_external,
    "c6-gguf-template-key.gguf": lambda: gguf_template(
        "tokenizer.chat_template.rag", "{{ x|attr('_'~'_cla'~'ss_'~'_') }}"
    ),
    "c7-zlib-trailing-bomb.joblib": joblib_zlib_trailing_bomb,
    "c7-gzip-second-member.joblib": gzip_then_pickle_member,
}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, build in BUILDERS.items():
        (HERE / name).write_bytes(build())
    print(f"wrote {len(BUILDERS)} files to {HERE}")


if __name__ == "__main__":
    main()
