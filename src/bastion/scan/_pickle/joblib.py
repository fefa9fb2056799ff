"""joblib's ``NumpyArrayWrapper``: the array layout joblib reads after the wrapper, by numpy's own rules."""

from __future__ import annotations

from typing import Any

from bastion.scan._io import Malformed
from bastion.scan._pickle.values import Box, Global, Obj, shallow_dict

_WRAPPER_KEYS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)


def numpy_dtype(dtype: Obj, offset: int) -> tuple[int, bool]:
    """(itemsize, hasobject) as numpy computes them for ``numpy.dtype(*args)`` + ``__setstate__(state)``."""
    real = _real_dtype(dtype, offset, 0)
    return real.itemsize, bool(real.hasobject)


def _real_dtype(dtype: Obj, offset: int, depth: int) -> Any:
    import numpy as np

    if depth > 8:
        raise Malformed("joblib array dtype nested too deeply", offset)
    args = _materialise(dtype.args, offset, depth)
    ok_args = isinstance(args, tuple) and 1 <= len(args) <= 3 and isinstance(args[0], str)
    if not ok_args or not all(isinstance(a, bool) for a in args[1:]):
        raise Malformed("joblib array dtype arguments are not understood", offset)
    try:
        real = np.dtype(args[0], bool(args[1]) if len(args) > 1 else False, True)  # always a private copy
        if dtype.state is not None:
            real.__setstate__(_materialise(dtype.state, offset, depth))
    except (TypeError, ValueError, KeyError) as exc:
        raise Malformed(f"joblib array dtype rejected by numpy ({str(exc)[:80]})", offset) from exc
    return real


def _materialise(v: Any, offset: int, depth: int) -> Any:
    """Plain values of a dtype's arguments/state (nested dtypes of structured arrays built the same way)."""
    if depth > 8:
        raise Malformed("joblib array dtype nested too deeply", offset)
    if isinstance(v, Obj) and v.ctor == "numpy.dtype":
        return _real_dtype(v, offset, depth + 1)
    if isinstance(v, Box):
        if v.truncated:
            raise Malformed("joblib array dtype too large to analyse", offset)
        if v.kind == "dict":
            return {
                _materialise(k, offset, depth + 1): _materialise(x, offset, depth + 1) for k, x in v.items
            }
        items = [_materialise(x, offset, depth + 1) for x in v.items]
        return tuple(items) if v.kind == "tuple" else items
    if v is None or isinstance(v, str | int | bytes | bool | float):
        return v
    raise Malformed("joblib array dtype is not understood", offset)


def array_layout(wrapper: Obj, offset: int) -> tuple[int, int, bool, bool]:
    """(element count, item size, object dtype, alignment byte) of the data joblib reads after ``wrapper``.

    Only the state joblib writes is understood; anything else is :class:`Malformed` (never guessed).
    """
    state = shallow_dict(wrapper.state)
    if state is None or not set(state) <= _WRAPPER_KEYS or len(state) != len(wrapper.state.items):
        raise Malformed("joblib NumpyArrayWrapper state is not the dict joblib writes", offset)
    subclass, dtype, shape = state.get("subclass"), state.get("dtype"), state.get("shape")
    if not isinstance(subclass, Global) or subclass.full not in ("numpy.ndarray", "numpy.memmap"):
        raise Malformed("joblib array subclass is not numpy.ndarray", offset)
    if not isinstance(dtype, Obj) or dtype.ctor != "numpy.dtype":
        raise Malformed("joblib array dtype is not a numpy.dtype", offset)
    shape = tuple(shape.items) if isinstance(shape, Box) and shape.kind == "tuple" else None
    if shape is None or not all(type(d) is int and d >= 0 for d in shape):
        raise Malformed("joblib array shape is not a tuple of sizes", offset)
    itemsize, has_object = numpy_dtype(dtype, offset)
    count = 1
    for d in shape:
        count *= d
    return count, itemsize, has_object, state.get("numpy_array_alignment_bytes") is not None


__all__ = ["array_layout", "numpy_dtype"]
