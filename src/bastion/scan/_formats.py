"""Validators for the non-pickle model formats: safetensors, GGUF, NumPy headers, Keras configs, ONNX.

Each reads only what it needs through a :class:`~bastion.scan._io.Source`, checks every length against the
bytes that exist, and raises :class:`~bastion.scan._io.Malformed` when the structure cannot be trusted.
"""

from __future__ import annotations

import ast
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.scan._allowlist import is_known_dangerous
from bastion.scan._io import Malformed, Source
from bastion.scan._model import ScanConfig, Severity

AddIssue = Callable[..., None]

# -- safetensors ------------------------------------------------------------------------------------------
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8


def _loads_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise Malformed(f"{what}: JSON nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"{what}: invalid JSON ({exc.__class__.__name__})") from exc


def check_safetensors(src: Source, config: ScanConfig) -> dict[str, Any]:
    """Validate a safetensors header and its layout; returns the parsed header."""
    n = int.from_bytes(src.read_at(0, 8), "little")
    if n > config.max_header_bytes:
        raise Malformed(f"safetensors header of {n} bytes exceeds the {config.max_header_bytes}-byte cap")
    if 8 + n > src.size:
        raise Malformed("safetensors header runs past the end of the file")
    header = _loads_json(src.read_at(8, n), "safetensors header")
    if not isinstance(header, dict):
        raise Malformed("safetensors header is not a JSON object")
    data_size = src.size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                raise Malformed("safetensors __metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise Malformed(f"safetensors entry {name[:60]!r} has an unexpected shape")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPE_BITS:
            raise Malformed(f"safetensors entry {name[:60]!r} has unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Malformed(f"safetensors entry {name[:60]!r} has an invalid shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise Malformed(f"safetensors entry {name[:60]!r} has invalid data_offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise Malformed(f"safetensors entry {name[:60]!r} points outside the data")
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * SAFETENSORS_DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise Malformed(f"safetensors entry {name[:60]!r}: shape x dtype does not match its byte span")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            kind = "overlaps another" if begin < cursor else "leaves a gap before it"
            raise Malformed(f"safetensors entry {name[:60]!r} {kind} (offsets not contiguous)")
        cursor = end
    if cursor != data_size:
        raise Malformed("safetensors data section does not end where the last tensor ends")
    return header


# -- GGUF -------------------------------------------------------------------------------------------------
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# dunder access, built strings fed to |attr (Jinja's ``attr('_'~'_cla'~…)`` trick), known escape hatches
_TEMPLATE_RISK = re.compile(
    r"__\w*__|\battr\s*\(|['\"]_['\"]\s*~|~\s*['\"]_|\bos\.|popen|\beval\b|\bexec\b|\bimport\b|\bglobals\b"
)


def check_gguf(src: Source, config: ScanConfig, add: AddIssue) -> None:
    r = src.reader()
    if r.read(4) != b"GGUF":
        raise Malformed("not a GGUF file")
    version = int.from_bytes(r.read(4), "little")
    if version not in (2, 3):
        raise Malformed(f"unsupported GGUF version {version}")
    n_tensors = int.from_bytes(r.read(8), "little")
    n_kv = int.from_bytes(r.read(8), "little")
    if n_tensors > config.max_gguf_items or n_kv > config.max_gguf_items:
        raise Malformed("GGUF tensor or key-value count out of bounds")

    def string() -> str:
        n = int.from_bytes(r.read(8), "little")
        if n > config.max_gguf_string:
            raise Malformed(f"GGUF string of {n} bytes exceeds the bound")
        return r.read(n).decode("utf-8", "replace")

    def value(kind: int, depth: int) -> Any:
        if kind in _GGUF_SCALARS:
            raw = r.read(_GGUF_SCALARS[kind])
            return int.from_bytes(raw, "little") if kind in (4, 5, 10, 11) else None
        if kind == _GGUF_STRING:
            return string()
        if kind == _GGUF_ARRAY and depth == 0:
            inner = int.from_bytes(r.read(4), "little")
            count = int.from_bytes(r.read(8), "little")
            if count > config.max_gguf_items * 16:
                raise Malformed("GGUF array length out of bounds")
            if inner in _GGUF_SCALARS:
                r.skip(count * _GGUF_SCALARS[inner])
            else:
                for _ in range(count):
                    value(inner, depth + 1)
            return None
        raise Malformed(f"GGUF value type {kind} not understood")

    alignment = 32
    for _ in range(n_kv):
        key = string()
        kind = int.from_bytes(r.read(4), "little")
        val = value(kind, 0)
        if key == "general.alignment" and isinstance(val, int):
            if val <= 0 or val & (val - 1) or val > 1 << 20:
                raise Malformed("GGUF alignment is not a small power of two")
            alignment = val
        if "chat_template" in key and isinstance(val, str) and _TEMPLATE_RISK.search(val):
            add("gguf-template-injection", Severity.high, f"chat template {key} reaches Python internals")
    ends: list[int] = []
    for _ in range(n_tensors):
        string()
        n_dims = int.from_bytes(r.read(4), "little")
        if n_dims > 8:
            raise Malformed("GGUF tensor with more than 8 dimensions")
        r.skip(8 * n_dims)
        ggml_type = int.from_bytes(r.read(4), "little")
        if ggml_type > 64:
            raise Malformed(f"GGUF tensor type {ggml_type} unknown")
        offset = int.from_bytes(r.read(8), "little")
        if offset % alignment:
            raise Malformed("GGUF tensor offset is not aligned")
        ends.append(offset)
    data_start = -(-r.pos // alignment) * alignment
    if any(data_start + off > src.size for off in ends):
        raise Malformed("GGUF tensor offset points past the end of the file")


# -- NumPy ------------------------------------------------------------------------------------------------
def parse_npy_header(src: Source, config: ScanConfig) -> tuple[Any, tuple[int, ...], int]:
    """Return (numpy dtype, shape, data offset) of a .npy stream; never executes anything."""
    import numpy as np

    head = src.read_at(0, 12)
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        raise Malformed("not a .npy file")
    major = head[6]
    if major == 1:
        hlen, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3):
        hlen, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        raise Malformed(f"unsupported .npy version {major}")
    if hlen > min(config.max_header_bytes, 1 << 20) or start + hlen > src.size:
        raise Malformed(".npy header length out of bounds")
    text = src.read_at(start, hlen).decode("latin-1" if major < 3 else "utf-8", "replace")
    try:
        meta = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        raise Malformed(".npy header is not a literal dict") from exc
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise Malformed(".npy header has unexpected keys")
    shape = meta["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise Malformed(".npy shape is invalid")
    try:
        dtype = np.lib.format.descr_to_dtype(meta["descr"])
    except Exception as exc:
        raise Malformed(".npy dtype descriptor is invalid") from exc
    return dtype, shape, start + hlen


# -- Keras ------------------------------------------------------------------------------------------------
_KERAS_FUNCTION_MODULES = re.compile(
    r"keras(\.src)?\.(activations|losses|metrics|initializers|regularizers|constraints|optimizers"
    r"(\.schedules)?|ops)(\.[a-z_]+)*"
)
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")


def check_keras_config(data: bytes, add: AddIssue, *, what: str = "Keras config") -> None:
    """Flag Lambda layers, custom objects and module references outside keras (CVE-2025-1550 style)."""
    config = _loads_json(data, what)
    todo: list[Any] = [config]
    seen = 0
    while todo:
        node = todo.pop()
        seen += 1
        if seen > 5_000_000:
            raise Malformed(f"{what} is too large to analyse")
        if isinstance(node, list):
            todo.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        todo.extend(node.values())
        cls = node.get("class_name")
        if not isinstance(cls, str):
            continue
        module = node.get("module")
        ref = f"{module}.{cls}" if isinstance(module, str) else cls
        if cls in ("Lambda", "TFOpLambda") or node.get("function_type") == "lambda":
            add("keras-lambda", Severity.critical, f"{cls} layer carries Python code", ref)
        if cls == "TorchModuleWrapper":
            add(
                "keras-torch-module",
                Severity.critical,
                "TorchModuleWrapper layer carries a pickled torch module",
                ref,
            )
        if cls == "TFSMLayer":
            add(
                "keras-savedmodel",
                Severity.high,
                "TFSMLayer loads a TensorFlow SavedModel (code) at load time",
                ref,
            )
        if isinstance(module, str):
            if module != "keras" and not module.startswith("keras."):
                sev = Severity.critical if is_known_dangerous(module, cls) else Severity.high
                add("keras-module-injection", sev, f"config imports {ref} from outside keras", ref)
            elif cls == "function":
                fn = node.get("config")
                if not _KERAS_FUNCTION_MODULES.fullmatch(module) or not isinstance(fn, str):
                    add(
                        "keras-module-injection",
                        Severity.high,
                        f"config calls {module}.{fn}",
                        f"{module}.{fn}",
                    )
            elif not _CLASS_NAME.fullmatch(cls):
                add("keras-module-injection", Severity.high, f"config references {ref}", ref)
        registered = node.get("registered_name")
        if isinstance(registered, str) and ">" in registered and not registered.startswith("keras"):
            add("keras-custom-object", Severity.medium, f"custom object {registered} needs code at load", ref)


# -- ONNX -------------------------------------------------------------------------------------------------
def check_onnx(src: Source, config: ScanConfig, add: AddIssue, *, model_dir: Path | None) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise Malformed("the onnx package is needed to analyse ONNX files (extra 'scan')") from exc
    if src.size > 2 << 30:
        raise Malformed("ONNX protobuf larger than 2 GiB")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(src.read_at(0, src.size))
    except Exception as exc:
        raise Malformed("not a parseable ONNX model") from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise Malformed("not an ONNX model (no ir_version or graph)")
    graphs: list[Any] = [model.graph, *model.functions]  # functions hold nodes (and their attributes) too
    tensors: list[Any] = []
    count = 0
    while graphs:
        g = graphs.pop()
        count += 1
        if count > 100_000:
            raise Malformed("ONNX graph nesting out of bounds")
        for sparse in [*getattr(g, "sparse_initializer", ())]:
            tensors.extend((sparse.values, sparse.indices))
        tensors.extend(getattr(g, "initializer", ()))
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
                if attr.HasField("t"):
                    tensors.append(attr.t)
                tensors.extend(attr.tensors)
                if attr.HasField("sparse_tensor"):
                    tensors.extend((attr.sparse_tensor.values, attr.sparse_tensor.indices))
                for sp in attr.sparse_tensors:
                    tensors.extend((sp.values, sp.indices))
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), None)
        if location is None:
            add(
                "onnx-external-data",
                Severity.high,
                f"tensor {t.name[:60]!r} has external data without location",
            )
            continue
        if _escapes(location, model_dir):
            add(
                "onnx-external-data",
                Severity.high,
                f"tensor {t.name[:60]!r} reads external data from {location[:120]!r} outside the model dir",
                location[:200],
            )


def _escapes(location: str, base: Path | None) -> bool:
    if not location or location.startswith(("/", "\\")) or "\\" in location or "\x00" in location:
        return True
    if re.match(r"[A-Za-z]:", location) or ".." in location.split("/"):
        return True
    if base is not None:
        target = (base / location).resolve()
        return not target.is_relative_to(base.resolve())
    return False


def path_traversal(name: str) -> bool:
    """An archive member name that would land outside the extraction directory."""
    return _escapes(name.rstrip("/"), None) if name else True


__all__ = [
    "check_gguf",
    "check_keras_config",
    "check_onnx",
    "check_safetensors",
    "looks_like_safetensors",
    "parse_npy_header",
    "path_traversal",
]
