"""Open Inference Protocol v2 (KServe / Triton) REST messages and tensor conversion.

Only the JSON form is served (tensor ``data`` flat in row-major order, or nested); the binary-tensor extension
is not. Shapes, datatypes and sizes are checked before anything is allocated from the request.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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
    shape: list[int] = Field(max_length=8)
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


def decode_tensor(tensor: RequestInput, *, max_elements: int) -> np.ndarray:
    """The request tensor as a numpy array of its declared datatype and shape, or InvalidInput."""
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(f"input {tensor.name!r}: datatype must be one of {', '.join(NUMERIC_DATATYPES)}")
    if any(d < 0 for d in tensor.shape):
        raise InvalidInput(f"input {tensor.name!r}: negative dimension in shape")
    size = math.prod(tensor.shape) if tensor.shape else 1
    if size > max_elements:
        raise InvalidInput(f"input {tensor.name!r}: {size} elements is more than the limit {max_elements}")
    dtype = NUMERIC_DATATYPES[tensor.datatype]
    data = tensor.data
    if data and isinstance(data[0], list):
        try:
            nested = np.asarray(data, dtype=np.float64 if dtype is not np.bool_ else np.bool_)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"input {tensor.name!r}: data is not a regular numeric array") from exc
        flat_values: Any = nested.reshape(-1)
    else:
        flat_values = data
    if len(flat_values) != size:
        raise InvalidInput(
            f"input {tensor.name!r}: {len(flat_values)} values do not fill shape {tensor.shape}"
        )
    for value in flat_values[:1]:
        if isinstance(value, str | bytes | dict | list) or value is None:
            raise InvalidInput(f"input {tensor.name!r}: data must be numbers")
    try:
        if dtype is np.bool_:
            if not all(isinstance(v, bool) for v in flat_values):
                raise InvalidInput(f"input {tensor.name!r}: BOOL data must be true/false")
            arr = np.asarray(flat_values, dtype=np.bool_)
        else:
            raw = np.asarray(flat_values, dtype=np.float64)
            if raw.ndim != 1:
                raise InvalidInput(f"input {tensor.name!r}: data is not a regular numeric array")
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                    raise InvalidInput(f"input {tensor.name!r}: {tensor.datatype} data must be integers")
                if raw.size and (raw.min() < info.min or raw.max() > info.max):
                    raise InvalidInput(f"input {tensor.name!r}: value out of {tensor.datatype} range")
            arr = raw.astype(dtype) if dtype is not np.float64 else raw  # type: ignore[assignment]
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"input {tensor.name!r}: data must be numbers") from exc
    return arr.reshape(tensor.shape)


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
    "decode_tensor",
    "encode_tensor",
]
