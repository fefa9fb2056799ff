"""Which calls of allow-listed globals a pickle may make, judged on their arguments (one policy, two readers).

The static walk (:mod:`bastion.scan._pickle.analyzer`, on simulated values) and the restricted unpickler
(:mod:`bastion.scan._unpickler`, on the real arguments just before the call) both ask :func:`judge_call`.
The rules refuse calls whose cost is not bounded by the file's size, and calls that reach code the
allow-list did not name (issue 19, cold attack): a single call cannot be interrupted by a deadline, because
big-integer and allocation work holds the GIL.

* entries of kind ``value`` (numpy ufuncs, torch's C activations) are referenced by pickles, never called:
  ``numpy.power(Fraction(10), 10**9)`` or ``numpy.power(10**30, 10**8)`` (object loops) would run for minutes;
* ``int``/``float``/``complex`` take only plain literals (no object's ``__int__``/``__float__``);
  ``bytes``/``bytearray`` never take a size;
* array constructions (``numpy.ndarray``, ``_reconstruct``, ``_mareconstruct``) need a literal shape whose
  element count times item size fits in the file, and a direct ``ndarray`` call never has an object dtype
  (object arrays are filled with ``None``: 8 bytes touched per element from a 33-byte file);
* ``torch._tensor._rebuild_from_type_v2(func, new_type, args, state)`` calls ``func(*args)``: ``func`` must be
  one of torch's own tensor rebuilders and ``new_type`` a tensor class;
* LightGBM's ``Booster`` is rebuilt by ``NEWOBJ`` + ``BUILD``; called with arguments it opens a file path;
* scikit-learn's scorers (``_Scorer``: ``GridSearchCV(scoring="accuracy").scorer_``) call the function their
  state names whenever the estimator is scored: they are never called with arguments (``NEWOBJ`` with none,
  or ``copyreg._reconstructor(cls, object, None)`` at protocols 0-1), and :func:`judge_scorer_state` judges
  every ``BUILD`` of one: a plain ``str``-keyed dict of sklearn's own scorer fields, ``_score_func`` one of
  the generated score functions, the rest plain data (an adaptive attacker's ``os.system`` or allow-listed
  ``lightgbm.basic.Booster`` there is refused, as is a key that only compares equal to ``"_score_func"``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from bastion.scan._allowlist import ENTRIES, SCORE_FUNCTIONS, SCORERS, VALUES

_ARRAYS = {  # key -> (index of the shape argument, index of the dtype argument)
    "numpy:ndarray": (0, 1),
    "numpy._core.multiarray:_reconstruct": (1, 2),
    "numpy.ma.core:_mareconstruct": (2, 3),
}
_NUMBERS = frozenset({"builtins:int", "builtins:float", "builtins:complex"})
_SIZED = frozenset({"builtins:bytes", "builtins:bytearray"})
_LITERALS = (str, int, float, bool, bytes)
REBUILD_FROM_TYPE = "torch._tensor:_rebuild_from_type_v2"
#: torch's own tensor rebuilders (the only ``func`` ``_rebuild_from_type_v2`` may call)
REBUILDERS = frozenset(k for k in ENTRIES if k.startswith("torch._utils:_rebuild_"))
#: tensor classes by name (the static reader judges names; the unpickler also checks ``issubclass``)
TENSOR_TYPES = frozenset(
    k
    for k in ENTRIES
    if k.split(":")[0].split(".")[0] == "torch"
    and k.split(":")[1] in ("Tensor", "Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer")
)
_NO_ARGS = frozenset({"lightgbm.basic:Booster"})
#: not on the generated list, but a project may allow them: their string parsing is then bounded
_EXACT = frozenset({"fractions:Fraction", "decimal:Decimal"})
_EXPONENT = re.compile(r"[eE]\s*([+-]?\s*\d[\d_]*)")
_MAX_DIGITS = 4300  # CPython's own int/str conversion bound

RECONSTRUCTOR = "copyreg:_reconstructor"
OBJECT = "builtins:object"
METADATA_REQUEST = "sklearn.utils._metadata_requests:MetadataRequest"
#: the fields sklearn's scorers keep (``_BaseScorer.__init__``, ``_CurveScorer``, ``set_score_request``)
_SCORER_FIELDS = frozenset(
    {"_score_func", "_sign", "_kwargs", "_response_method", "_thresholds", "_metadata_request"}
)
_RESPONSE_METHODS = frozenset({"predict", "predict_proba", "predict_log_proba", "decision_function"})

#: the keys :func:`judge_call` has rules for (callers skip the argument conversion for every other call)
JUDGED = (
    VALUES
    | _NUMBERS
    | _SIZED
    | frozenset(_ARRAYS)
    | {REBUILD_FROM_TYPE, RECONSTRUCTOR}
    | _NO_ARGS
    | _EXACT
    | SCORERS
)

KeyOf = Callable[[Any], "str | None"]
DtypeOf = Callable[[Any], Any]


def _count(shape: Any) -> int | None:
    if type(shape) is int:
        return shape if shape >= 0 else None
    if isinstance(shape, tuple | list) and all(type(d) is int and d >= 0 for d in shape):
        n = 1
        for d in shape:
            n *= d
        return n
    return None


@functools.lru_cache(maxsize=256)
def _literal_dtype(spec: str | bytes) -> Any:
    import numpy as np

    try:
        return np.dtype(spec.decode("latin-1") if isinstance(spec, bytes) else spec)
    except Exception:
        return None


def literal_dtype(spec: Any) -> Any:
    """numpy's dtype for a string spec (``'f8'``, ``b'b'``, ``'O'``), or None."""
    if isinstance(spec, str | bytes) and len(spec) < 256:
        return _literal_dtype(spec)
    return None


def _array(
    key: str, args: tuple[Any, ...], kwargs: dict[str, Any], size: int, dtype_of: DtypeOf
) -> str | None:
    i_shape, i_dtype = _ARRAYS[key]
    shape = args[i_shape] if len(args) > i_shape else kwargs.get("shape")
    count = _count(shape)
    if count is None:
        return f"{key} with a shape that is not a literal tuple of sizes"
    if len(args) > i_dtype:
        spec = args[i_dtype]
    elif "dtype" in kwargs:
        spec = kwargs["dtype"]
    else:
        spec = "f8" if key == "numpy:ndarray" else None
    dtype = dtype_of(spec)
    if dtype is None:
        return None if count == 0 else f"{key} of {count} elements with a dtype that cannot be judged"
    if key == "numpy:ndarray" and dtype.hasobject:
        return "numpy.ndarray called directly with an object dtype (filled element by element)"
    if count * max(dtype.itemsize, 1) > size:
        return f"{key} of {count} x {dtype.itemsize} bytes, more than the file holds ({size} bytes)"
    return None


def _huge(text: str) -> bool:
    if len(text) > _MAX_DIGITS:
        return True
    return any(abs(int(m.replace("_", "").replace(" ", ""))) > _MAX_DIGITS for m in _EXPONENT.findall(text))


def judge_call(
    key: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    op: str,
    size: int,
    key_of: KeyOf,
    dtype_of: DtypeOf,
    is_tensor_type: Callable[[Any], bool],
) -> str | None:
    """Why calling the allow-listed ``key`` with these arguments is refused, or None when it is not."""
    if key is None:
        return None
    if key in VALUES:
        return f"{op} calls {key}, a value pickles only reference (never call)"
    if key in _NUMBERS:
        if any(type(a) not in _LITERALS for a in (*args, *kwargs.values())):
            return f"{key} of an object (its __int__/__index__/__float__ runs unbounded code)"
    elif key in _SIZED:
        if args and type(args[0]) in (int, bool):
            return f"{key}(int) allocates: not how pickles build bytes"
    elif key in _ARRAYS:
        return _array(key, args, kwargs, size, dtype_of)
    elif key == REBUILD_FROM_TYPE:
        func = args[0] if args else None
        new_type = args[1] if len(args) > 1 else None
        if key_of(func) not in REBUILDERS:
            return "_rebuild_from_type_v2 with a func that is not one of torch's tensor rebuilders"
        if key_of(new_type) not in TENSOR_TYPES or not is_tensor_type(new_type):
            return "_rebuild_from_type_v2 with a new_type that is not a tensor class"
    elif key in _EXACT:
        for a in (*args, *kwargs.values()):
            if not isinstance(a, str | int | float | bool) or (isinstance(a, str) and _huge(a)):
                return (
                    f"{key} of a long or large-exponent string or of an object (unbounded big-integer work)"
                )
    elif key in _NO_ARGS and (args or kwargs) and op != "BUILD":
        return f"{op} calls {key} with arguments (pickles rebuild it by NEWOBJ + BUILD; arguments open files)"
    elif key in SCORERS and (args or kwargs):
        return f"{op} calls the scorer {key} with arguments (scorers are rebuilt by NEWOBJ + BUILD)"
    elif (
        key == RECONSTRUCTOR
        and any(key_of(a) in SCORERS for a in args[:2])
        and (len(args) != 3 or kwargs or key_of(args[1]) != OBJECT or args[2] is not None)
    ):
        return "copyreg._reconstructor of a scorer other than (cls, object, None)"
    return None


#: what a data view returns for a value that is not plain data
NOT_DATA = object()
DataOf = Callable[[Any], Any]


def judge_scorer_state(
    state: Any, *, key_of: KeyOf, data_of: DataOf, is_request: Callable[[Any], bool]
) -> str | None:
    """Why the ``BUILD`` state of a scikit-learn scorer is refused, or None.

    ``state`` is the list of the state dict's ``(key, value)`` pairs as the pickle wrote them (every pair,
    duplicates included), or None when the state is not a complete dict; ``data_of`` returns the plain Python
    data a value denotes (literals and containers of literals) or :data:`NOT_DATA`.
    """
    if state is None:
        return "a scorer's state that is not a plain dict (scorers call the function their state names)"
    for k, v in state:
        if type(k) is not str or k not in _SCORER_FIELDS:
            field = k[:40] if type(k) is str else f"<{type(k).__name__}>"
            return f"a scorer's state with the field {field!r} (not one sklearn's scorers keep)"
        if k == "_score_func":
            if key_of(v) not in SCORE_FUNCTIONS:
                return "a scorer whose _score_func is not one of sklearn's metric functions"
        elif k == "_sign":
            if type(v) not in (int, float):
                return "a scorer whose _sign is not a number"
        elif k == "_metadata_request":
            if not is_request(v):
                return "a scorer whose _metadata_request is not sklearn's MetadataRequest"
        else:
            data = data_of(v)
            if data is NOT_DATA:
                return f"a scorer whose {k} is not plain data"
            if k == "_kwargs" and not (isinstance(data, dict) and all(type(x) is str for x in data)):
                return "a scorer whose _kwargs is not a str-keyed dict"
            if k == "_response_method":
                names = data if isinstance(data, tuple | list) else (data,)
                if not names or not all(type(n) is str and n in _RESPONSE_METHODS for n in names):
                    return "a scorer whose _response_method is not one of predict/predict_proba/…"
    return None


__all__ = [
    "JUDGED",
    "METADATA_REQUEST",
    "NOT_DATA",
    "REBUILDERS",
    "REBUILD_FROM_TYPE",
    "RECONSTRUCTOR",
    "TENSOR_TYPES",
    "judge_call",
    "judge_scorer_state",
    "literal_dtype",
]
