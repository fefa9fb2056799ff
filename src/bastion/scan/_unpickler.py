"""The unpickler ``safe_load`` uses: the allow-list is enforced inside the loader, not only by the scan.

:class:`RestrictedUnpickler` is CPython's pure-Python ``pickle._Unpickler`` with its security-relevant
opcodes replaced (the approach of PickleBall, Kellas et al., CCS 2025: a policy enforced by a replacement
unpickler; our policy is the generated allow-list rather than a per-class one):

* ``find_class`` admits only exact ``module:qualname`` pairs of the allow-list (plus the user's extensions)
  and resolves them by walking attributes of the imported module; extension codes go through it too;
* ``persistent_load`` refuses: plain and joblib pickles never need one (torch files go through torch's own
  ``weights_only`` unpickler instead);
* ``REDUCE``/``NEWOBJ``/``NEWOBJ_EX``/``OBJ``/``INST`` may only call an object ``find_class`` returned (a
  computed value is never called), with arguments that are materialised values (no ranges or iterators) and
  ``_codecs.encode`` only as protocol 2 uses it; a call that returns a module, class or function is refused,
  and a result that is not fresh (someone else holds a reference: a cached or global object) is marked stale;
* ``BUILD``, ``SETITEM(S)``, ``APPEND(S)`` and ``ADDITEMS`` refuse a target that ``find_class`` returned or
  that is stale: only objects built during this load can be mutated (issue 19, root cause 2);
* ``BUILD`` of a scikit-learn scorer is judged on its state (:func:`bastion.scan._calls.judge_scorer_state`:
  the function it will call when the estimator is scored must be one of sklearn's metric functions);
* a deadline is checked on every read, so a load cannot run for ever.

In joblib mode the ``NumpyArrayWrapper`` placeholder is expanded the way ``joblib.load`` does it (raw array
bytes after its ``BUILD``; object arrays as a nested pickle), but only for the exact construction joblib
writes (``NEWOBJ`` + ``BUILD`` with joblib's keys, at a frame boundary), the dtype judged by numpy itself, and
the nested pickle read by this same restricted unpickler.

Length: the restricted unpickler is one class whose opcode overrides share the argument checks; splitting
it would separate each opcode from the checks it must apply.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
import sys
import time
import types
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar

from bastion.errors import UnsafeArtifact
from bastion.scan._allowlist import ALIASES, ALLOWED, SCORERS
from bastion.scan._calls import (
    JUDGED,
    METADATA_REQUEST,
    NOT_DATA,
    judge_call,
    judge_scorer_state,
    literal_dtype,
)

_BASE: Any = pickle._Unpickler  # type: ignore[attr-defined]  # the pure-Python unpickler (hookable opcodes)
_DISPATCH: dict[int, Any] = _BASE.dispatch
_NOT_RESULTS = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    functools.partial,
)
_WRAPPER_KEYS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)
_CHUNK = 16 << 20


class LoadRefused(UnsafeArtifact):
    """The restricted unpickler met something outside its policy (nothing of it was executed)."""


class _Deadline:
    """A file wrapper that checks a wall-clock deadline on every read."""

    def __init__(self, fh: BinaryIO, deadline: float) -> None:
        self.fh = fh
        self.deadline = deadline

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            raise LoadRefused("loading took longer than the time bound")

    def read(self, n: int = -1) -> bytes:
        self._check()
        return self.fh.read(n)

    def readinto(self, b: Any) -> int:
        self._check()
        return self.fh.readinto(b)  # type: ignore[attr-defined,no-any-return]

    def readline(self, limit: int = -1) -> bytes:
        self._check()
        return self.fh.readline(limit)

    def tell(self) -> int:
        return self.fh.tell()


@functools.lru_cache(maxsize=2048)
def resolve(key: str) -> Any:
    """Import the object an allow-list entry names (walking attributes of its module)."""
    module, _, qualname = key.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, types.ModuleType):
        raise LoadRefused(f"{key} is a module")
    return obj


def _flat(args: Any) -> Iterator[Any]:
    if isinstance(args, tuple | list):
        yield from args
    elif isinstance(args, dict):
        yield from args.values()
    else:
        yield args


class RestrictedUnpickler(_BASE):  # type: ignore[misc]
    dispatch: ClassVar[dict[int, Any]] = dict(_DISPATCH)

    def __init__(
        self,
        fh: BinaryIO,
        *,
        extra: frozenset[str] = frozenset(),
        deadline: float,
        size: int,
        joblib: bool = False,
    ) -> None:
        self._raw = _Deadline(fh, deadline)
        super().__init__(self._raw, fix_imports=False, encoding="ASCII")
        self._extra = extra
        self._deadline = deadline
        self._size = size
        self._joblib = joblib
        self._granted: dict[int, Any] = {}
        self._keys: dict[int, str] = {}
        self._stale: dict[int, Any] = {}
        self._wrappers: dict[int, Any] = {}
        self._scorer_types: tuple[type, ...] = ()

    # -- imports ------------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}:{name}"
        if key not in ALLOWED and key not in self._extra:
            raise LoadRefused(f"refusing to import {module}.{name} (not on the allow-list)")
        canon = ALIASES.get(key, key)
        obj = resolve(canon)
        self._granted[id(obj)] = obj
        self._keys.setdefault(id(obj), canon)
        if canon in SCORERS and isinstance(obj, type):
            self._scorer_types += (obj,)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise LoadRefused("a persistent id in a plain pickle (only torch's loader resolves those)")

    # -- calls --------------------------------------------------------------------------------------------
    def _callable(self, func: Any, op: str) -> None:
        if self._granted.get(id(func)) is not func:
            raise LoadRefused(f"{op} calls a value that is not an allow-listed global")

    def _key(self, v: Any) -> str | None:
        return self._keys.get(id(v)) if self._granted.get(id(v)) is v else None

    def _arguments(self, func: Any, args: Any, op: str = "REDUCE", kwargs: Any = None) -> None:
        for a in _flat(args):
            if isinstance(a, range | Iterator):
                raise LoadRefused("a range or iterator passed to a call (unbounded materialisation)")
        key = self._key(func)
        if key in JUDGED:
            reason = judge_call(
                key,
                args if isinstance(args, tuple) else (args,),
                kwargs if isinstance(kwargs, dict) else {},
                op=op,
                size=self._size,
                key_of=self._key,
                dtype_of=_dtype,
                is_tensor_type=_is_tensor_type,
            )
            if reason is not None:
                raise LoadRefused(reason)
        if func is bytes or func is bytearray:
            if args and isinstance(args[0], int):
                raise LoadRefused(f"{func.__name__}(int) allocates: not how pickles build bytes")
        elif getattr(func, "__module__", None) == "_codecs":
            ok = len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")
            if not ok:
                raise LoadRefused("_codecs.encode used other than as protocol 2 writes bytes")

    def _result(self, value: Any) -> Any:
        if isinstance(value, _NOT_RESULTS):
            raise LoadRefused(f"a call returned a {type(value).__name__}, not a value")
        # 3 = this frame's local, the argument of getrefcount, the caller's local: anything more is shared
        if sys.getrefcount(value) > 3:
            self._stale[id(value)] = value
        return value

    def _call(self, func: Any, args: tuple[Any, ...], op: str) -> Any:
        self._callable(func, op)
        self._arguments(func, args, op)
        value = func(*args)
        return self._result(value)

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if not isinstance(args, tuple):
            raise LoadRefused("REDUCE arguments are not a tuple")
        stack[-1] = self._call(func, args, "REDUCE")

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._callable(cls, "NEWOBJ")
        if not isinstance(cls, type) or not isinstance(args, tuple):
            raise LoadRefused("NEWOBJ on a non-class")
        self._arguments(cls, args, "NEWOBJ")
        obj = self._result(cls.__new__(cls, *args))
        if self._joblib and _is_wrapper_class(cls) and not args:
            self._wrappers[id(obj)] = obj
        self.append(obj)

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._callable(cls, "NEWOBJ_EX")
        if not isinstance(cls, type) or not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise LoadRefused("NEWOBJ_EX on a non-class")
        self._arguments(cls, args, "NEWOBJ_EX", kwargs)
        self._arguments(cls, kwargs, "NEWOBJ_EX")
        self.append(self._result(cls.__new__(cls, *args, **kwargs)))

    def _instantiate(self, klass: Any, args: tuple[Any, ...]) -> None:
        self._callable(klass, "INST/OBJ")
        self._arguments(klass, args, "INST/OBJ")
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            value = klass(*args)
        else:
            value = klass.__new__(klass)  # type: ignore[call-overload]
        self.append(self._result(value))

    # -- mutations ----------------------------------------------------------------------------------------
    def _mutable(self, target: Any, op: str) -> None:
        if id(target) in self._granted or id(target) in self._stale or isinstance(target, _NOT_RESULTS):
            raise LoadRefused(f"{op} on an object this pickle did not build (an imported or shared object)")

    def load_build(self) -> None:
        target = self.stack[-2]
        self._mutable(target, "BUILD")
        if self._scorer_types and isinstance(target, self._scorer_types):
            state = self.stack[-1]
            reason = judge_scorer_state(
                list(state.items()) if type(state) is dict else None,
                key_of=self._key,
                data_of=_data,
                is_request=lambda v: self._key(type(v)) == METADATA_REQUEST,
            )
            if reason is not None:
                raise LoadRefused(reason)
        _DISPATCH[pickle.BUILD[0]](self)
        if self._joblib and _is_wrapper(target):
            self.stack[-1] = self._joblib_array(target)

    def load_setitem(self) -> None:
        self._mutable(self.stack[-3], "SETITEM")
        _DISPATCH[pickle.SETITEM[0]](self)

    def load_setitems(self) -> None:
        self._mutable(self.metastack[-1][-1], "SETITEMS")
        _DISPATCH[pickle.SETITEMS[0]](self)

    def load_append(self) -> None:
        self._mutable(self.stack[-2], "APPEND")
        _DISPATCH[pickle.APPEND[0]](self)

    def load_appends(self) -> None:
        self._mutable(self.metastack[-1][-1], "APPENDS")
        _DISPATCH[pickle.APPENDS[0]](self)

    def load_additems(self) -> None:
        self._mutable(self.metastack[-1][-1], "ADDITEMS")
        _DISPATCH[pickle.ADDITEMS[0]](self)

    # -- joblib -------------------------------------------------------------------------------------------
    def _joblib_array(self, wrapper: Any) -> Any:
        import numpy as np

        if id(wrapper) not in self._wrappers:
            raise LoadRefused("joblib array wrapper built in a form joblib does not write")
        frame = self._unframer.current_frame
        if frame is not None and frame.tell() < len(frame.getbuffer()):
            raise LoadRefused("joblib array data inside a pickle frame")
        state = vars(wrapper)
        if not set(state) <= _WRAPPER_KEYS or not {"subclass", "shape", "dtype", "order"} <= set(state):
            raise LoadRefused("joblib array wrapper with unexpected fields")
        dtype, shape, order = state["dtype"], state["shape"], state["order"]
        if state["subclass"] not in (np.ndarray, np.memmap) or not isinstance(dtype, np.dtype):
            raise LoadRefused("joblib array of an unexpected type")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise LoadRefused("joblib array shape is not a tuple of sizes")
        if order not in ("C", "F"):
            raise LoadRefused("joblib array order is not C or F")
        fh = self._raw
        if dtype.hasobject:
            inner = RestrictedUnpickler(
                fh.fh, extra=self._extra, deadline=self._deadline, size=self._size, joblib=False
            )
            array = inner.load()
            if not isinstance(array, np.ndarray):
                raise LoadRefused("joblib object array did not load as an array")
            return array
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = fh.read(1)
            if len(pad) != 1:
                raise LoadRefused("joblib array truncated")
            fh.read(pad[0])
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if nbytes > self._size - fh.tell():
            raise LoadRefused("joblib array is longer than the file")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        done = 0
        while done < nbytes:
            n = fh.readinto(view[done : done + _CHUNK])
            if not n:
                raise LoadRefused("joblib array truncated")
            done += n
        view.release()
        array = np.frombuffer(buf, dtype=dtype, count=count)
        array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
        if dtype.byteorder not in ("=", "|") and dtype.byteorder != (
            "<" if sys.byteorder == "little" else ">"
        ):
            array = array.byteswap().view(dtype.newbyteorder("="))
        return array


for _op, _name in (
    (pickle.REDUCE, "load_reduce"),
    (pickle.NEWOBJ, "load_newobj"),
    (pickle.NEWOBJ_EX, "load_newobj_ex"),
    (pickle.BUILD, "load_build"),
    (pickle.SETITEM, "load_setitem"),
    (pickle.SETITEMS, "load_setitems"),
    (pickle.APPEND, "load_append"),
    (pickle.APPENDS, "load_appends"),
    (pickle.ADDITEMS, "load_additems"),
):
    RestrictedUnpickler.dispatch[_op[0]] = getattr(RestrictedUnpickler, _name)


_LITERAL_TYPES = (str, int, float, bool, bytes, type(None))


def _data(v: Any, depth: int = 0) -> Any:
    """``v`` when it is plain data (literals and lists, tuples, dicts of them), else NOT_DATA."""
    if type(v) in _LITERAL_TYPES:
        return v
    if depth > 8:
        return NOT_DATA
    if type(v) in (list, tuple):
        return v if all(_data(x, depth + 1) is not NOT_DATA for x in v) else NOT_DATA
    if type(v) is dict:
        ok = all(type(k) in _LITERAL_TYPES and _data(x, depth + 1) is not NOT_DATA for k, x in v.items())
        return v if ok else NOT_DATA
    return NOT_DATA


def _dtype(spec: Any) -> Any:
    """numpy's dtype for a real dtype argument, or None when it is not one numpy accepts cheaply."""
    import numpy as np

    if isinstance(spec, np.dtype):
        return spec
    if isinstance(spec, type) and issubclass(spec, np.generic):
        return np.dtype(spec)
    return literal_dtype(spec)


def _is_tensor_type(v: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, type) and issubclass(v, torch.Tensor)


def _is_wrapper_class(cls: Any) -> bool:
    return cls.__module__ == "joblib.numpy_pickle" and cls.__qualname__ == "NumpyArrayWrapper"


def _is_wrapper(obj: Any) -> bool:
    return _is_wrapper_class(type(obj))


def restricted_load(
    fh: BinaryIO,
    *,
    size: int,
    extra: frozenset[str] = frozenset(),
    timeout_s: float = 300.0,
    joblib: bool = False,
) -> Any:
    """Load one pickle from ``fh`` under the allow-list; :class:`LoadRefused` when the policy says no."""
    deadline = time.monotonic() + timeout_s
    try:
        return RestrictedUnpickler(fh, extra=extra, deadline=deadline, size=size, joblib=joblib).load()
    except LoadRefused:
        raise
    except RecursionError as exc:
        raise LoadRefused("pickle nested too deeply") from exc
    except MemoryError as exc:
        raise LoadRefused("loading the pickle ran out of memory") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        OverflowError,
    ) as exc:
        raise LoadRefused(f"pickle could not be loaded ({type(exc).__name__})") from exc


def restricted_loads(data: bytes, *, extra: frozenset[str] = frozenset(), joblib: bool = False) -> Any:
    return restricted_load(io.BytesIO(data), size=len(data), extra=extra, joblib=joblib)


__all__ = ["LoadRefused", "RestrictedUnpickler", "resolve", "restricted_load", "restricted_loads"]
