"""Open Inference Protocol v2 (KServe / Triton) REST messages and tensor conversion.

Only the JSON form is served (tensor ``data`` flat in row-major order, or nested); the binary-tensor extension
is not. Shapes, datatypes and sizes are checked before anything is allocated from the request.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from bastion.errors import InvalidInput

NUMERIC_DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
DATATYPES = (*NUMERIC_DATATYPES, "BYTES")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128)
    shape: list[StrictInt] = Field(max_length=8)
    datatype: str = Field(max_length=16)
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=8)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=8)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class ErrorResponse(BaseModel):
    error: str


def ascii_int(text: str | bytes | None, *, limit: int = 1 << 62) -> int | None:
    """A header's non-negative decimal integer (ASCII digits only, at most ``limit``), else None.

    ``str.isdigit`` accepts ``²`` and ``١``, which ``int()`` then refuses or reads as another number."""
    if text is None:
        return None
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else text
    if not 0 < len(raw) <= 19 or not all(48 <= b <= 57 for b in raw):
        return None
    value = int(raw)
    return value if value <= limit else None


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _flatten(data: list[Any], depth: int, where: str) -> list[Any]:
    """Nested lists → one flat list of leaves, row-major, refusing ragged nesting beyond ``depth``."""
    if not data or not isinstance(data[0], list):
        return data
    if depth <= 0:
        raise InvalidInput(f"{where}: data is nested deeper than its shape")
    out: list[Any] = []
    for item in data:
        if not isinstance(item, list):
            raise InvalidInput(f"{where}: data is not a regular numeric array")
        out.extend(_flatten(item, depth - 1, where))
    return out


def decode_tensor(tensor: RequestInput, *, max_elements: int) -> np.ndarray:
    """The request tensor as a numpy array of its declared datatype and shape, or InvalidInput.

    Every element is checked (JSON numbers for numeric types, ``true``/``false`` for BOOL): numpy would
    otherwise turn the string ``"0.5"`` into 0.5. Every dimension is bounded before anything is allocated.
    """
    where = f"input {tensor.name[:64]!r}"
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(f"{where}: datatype must be one of {', '.join(NUMERIC_DATATYPES)}")
    if any(d < 0 or d > max_elements for d in tensor.shape):
        raise InvalidInput(f"{where}: every dimension must lie in 0..{max_elements}")
    size = math.prod(tensor.shape) if tensor.shape else 1
    if size > max_elements:
        raise InvalidInput(f"{where}: {size} elements is more than the limit {max_elements}")
    dtype = NUMERIC_DATATYPES[tensor.datatype]
    flat_values = _flatten(tensor.data, max(len(tensor.shape) - 1, 0), where)
    if len(flat_values) != size:
        raise InvalidInput(f"{where}: {len(flat_values)} values do not fill shape {tensor.shape}")
    if dtype is np.bool_:
        if not all(type(v) is bool for v in flat_values):
            raise InvalidInput(f"{where}: BOOL data must be true/false")
        return np.asarray(flat_values, dtype=np.bool_).reshape(tensor.shape)
    if not all(_is_number(v) for v in flat_values):
        raise InvalidInput(f"{where}: data must be numbers")
    if np.issubdtype(dtype, np.integer):
        return _integers(flat_values, dtype, tensor, where)
    try:
        raw = np.asarray(flat_values, dtype=np.float64)
        arr = raw.astype(dtype) if dtype is not np.float64 else raw
        return arr.reshape(tensor.shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"{where}: data must be numbers that fit {tensor.datatype}") from exc


def _integers(values: list[Any], dtype: Any, tensor: RequestInput, where: str) -> np.ndarray:
    """Integer data checked exactly on the Python values (no float64 detour: 2**63 would wrap)."""
    info = np.iinfo(dtype)
    exact: list[int] = []
    for v in values:
        if type(v) is float:
            if not math.isfinite(v) or not v.is_integer():
                raise InvalidInput(f"{where}: {tensor.datatype} data must be integers")
            v = int(v)
        if not info.min <= v <= info.max:
            raise InvalidInput(f"{where}: value out of {tensor.datatype} range")
        exact.append(v)
    return np.array(exact, dtype=dtype).reshape(tensor.shape)


def encode_tensor(name: str, array: np.ndarray, *, datatype: str | None = None) -> dict[str, Any]:
    """One OIP v2 output tensor (flat row-major data); ``datatype`` overrides the one inferred."""
    if datatype is not None:
        return {
            "name": name,
            "shape": list(array.shape),
            "datatype": datatype,
            "data": array.reshape(-1).tolist(),
        }
    if array.dtype.kind == "f":
        datatype = "FP32" if array.dtype == np.float32 else "FP64"
    elif array.dtype.kind in "iu":
        datatype = "INT64"
        array = array.astype(np.int64)
    elif array.dtype.kind == "b":
        datatype = "BOOL"
    else:
        datatype = "BYTES"
        array = array.astype(str)
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.reshape(-1).tolist(),
    }


__all__ = [
    "DATATYPES",
    "NUMERIC_DATATYPES",
    "ErrorResponse",
    "InferenceRequest",
    "InferenceResponse",
    "ModelMetadata",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerMetadata",
    "TensorMetadata",
    "ascii_int",
    "decode_tensor",
    "encode_tensor",
]
