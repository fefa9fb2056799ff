"""A recording oracle: CPython's own unpickler with every import replaced by a stub.

:func:`replay` runs the C ``pickle.Unpickler`` (the exact parser ``pickle.load`` uses) over a stream, but its
``find_class`` never imports anything: it returns a :class:`Stub` that records every global reached and every
call, attribute access and mutation made through it. Nothing real is ever called, so attacker bytes can be
replayed safely to learn what ``pickle.load`` *would* have imported and called.

The scanner uses it where its own parser and CPython's could disagree (a stream that starts like a pickle but
that bastion's analyser rejects, and the plain-pickle reading of a joblib file); the test suite uses it as the
differential oracle for the fuzzer (issue 19), together with the two readers ``safe_load`` itself relies on:
:func:`replay_numpy` (``numpy.load``, with or without ``allow_pickle``: numpy's own header and container
parsing, its ``pickle.load`` calls routed to the recording unpickler) and :func:`replay_torch`
(``torch.load(weights_only=True)``: torch's own zip/legacy readers and restricted unpickler, every global
outside torch's built-in list answered by a recording stub, as if the user had allow-listed it).
"""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO


@dataclass
class Recording:
    globals: list[str] = field(default_factory=list)  # "module:name" in the order find_class saw them
    calls: list[str] = field(default_factory=list)
    mutations: list[str] = field(default_factory=list)
    persistent: int = 0
    error: str | None = None
    end: int | None = None  # stream position after STOP (None when the load failed)


class Stub:
    """Stands in for every imported object and every value derived from one."""

    __slots__ = ("_name", "_rec")

    def __init__(self, rec: Recording, name: str) -> None:
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:
        self._rec.calls.append(self._name)
        return Stub(self._rec, f"{self._name}()")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Stub(self._rec, f"{self._name}.{attr}")

    def __setattr__(self, attr: str, value: Any) -> None:
        self._rec.mutations.append(f"{self._name}.{attr}")

    def __setstate__(self, state: Any) -> None:
        self._rec.mutations.append(f"{self._name} BUILD")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._rec.mutations.append(f"{self._name}[]")

    def append(self, value: Any) -> None:
        self._rec.mutations.append(f"{self._name}.append")

    def extend(self, values: Any) -> None:
        self._rec.mutations.append(f"{self._name}.extend")

    def add(self, value: Any) -> None:
        self._rec.mutations.append(f"{self._name}.add")

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


class _StubMeta(type):
    """Globals are stub *classes*, so NEWOBJ/INST accept them; calls and BUILD on them are recorded."""

    _rec: Recording
    _name: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Stub:
        cls._rec.calls.append(cls._name)
        return Stub(cls._rec, f"{cls._name}()")

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Stub(cls._rec, f"{cls._name}.{attr}")

    def __setstate__(cls, state: Any) -> None:
        cls._rec.mutations.append(f"{cls._name} BUILD")


def _stub_type(rec: Recording, name: str) -> type:
    def new(klass: type, *args: Any, **kwargs: Any) -> Stub:
        rec.calls.append(f"{name}.__new__")
        return Stub(rec, f"{name}()")

    return _StubMeta("Stub", (), {"_rec": rec, "_name": name, "__new__": new, "__slots__": ()})


def _importable(dotted: str) -> bool:
    return bool(dotted) and all(part.isidentifier() for part in dotted.split("."))


class _Record:
    _rec: Recording

    def find_class(self, module: str, name: str) -> Any:
        if not _importable(module) or not _importable(name):
            # the real find_class fails on these (no module or attribute can have such a name)
            raise ModuleNotFoundError(f"no module named {module[:40]!r}")
        self._rec.globals.append(f"{module}:{name}")
        return _stub_type(self._rec, f"{module}:{name}")

    def persistent_load(self, pid: Any) -> Any:
        self._rec.persistent += 1
        return Stub(self._rec, "<persistent>")


class _StubUnpickler(_Record, pickle.Unpickler):
    def __init__(self, fh: BinaryIO, rec: Recording) -> None:
        super().__init__(fh, fix_imports=False, encoding="latin1")
        self._rec = rec


class _PureStubUnpickler(_Record, pickle._Unpickler):  # type: ignore[name-defined,misc]
    """The pure-Python unpickler (the one joblib and torch's weights_only loader build on)."""

    def __init__(self, fh: BinaryIO, rec: Recording) -> None:
        super().__init__(fh, fix_imports=False, encoding="latin1")
        self._rec = rec


def replay(fh: BinaryIO | bytes, *, pure: bool = False) -> Recording:
    """Replay one pickle from ``fh``'s position (or from bytes); never raises for bad input.

    ``pure=True`` uses ``pickle._Unpickler`` (pure Python) instead of the C unpickler.
    """
    stream: BinaryIO = io.BytesIO(fh) if isinstance(fh, bytes | bytearray) else fh
    rec = Recording()
    cls = _PureStubUnpickler if pure else _StubUnpickler
    try:
        cls(stream, rec).load()
        rec.end = stream.tell()
    except RecursionError:
        rec.error = "RecursionError"
    except MemoryError:
        rec.error = "MemoryError"
    except Exception as exc:
        rec.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return rec


class _RecordingPickle:
    """Stands in for the ``pickle`` module inside numpy's readers: ``load`` is the recording unpickler."""

    def __init__(self, rec: Recording) -> None:
        self._rec = rec

    def load(self, fh: BinaryIO, **_: Any) -> Any:
        self._rec.calls.append("pickle.load")  # numpy reached an unpickler
        sub = replay(fh)
        self._rec.globals += sub.globals
        self._rec.calls += sub.calls
        self._rec.mutations += sub.mutations
        if sub.error is not None:
            raise pickle.UnpicklingError(sub.error)
        return Stub(self._rec, "<unpickled>")


def replay_numpy(data: bytes, *, allow_pickle: bool) -> Recording:
    """``numpy.load`` over ``data`` (every ``.npz`` member read), its pickle calls replayed with stubs.

    With ``allow_pickle=False`` numpy must never reach an unpickler (``"pickle.load"`` in ``calls``: it did).
    """
    import numpy as np
    from numpy.lib import _format_impl, _npyio_impl

    rec = Recording()
    shim = _RecordingPickle(rec)
    saved = (_format_impl.pickle, _npyio_impl.pickle)  # type: ignore[attr-defined]
    _format_impl.pickle = _npyio_impl.pickle = shim  # type: ignore[attr-defined]
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=allow_pickle)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                for key in loaded.files:
                    loaded[key]
        rec.end = len(data)
    except Exception as exc:  # every way numpy rejects it is a result
        rec.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        _format_impl.pickle, _npyio_impl.pickle = saved  # type: ignore[attr-defined]
    return rec


class _UserGlobals(dict[str, Any]):
    """torch's user allow-list, answering every name with a recording stub type (and recording the lookup)."""

    def __init__(self, rec: Recording) -> None:
        super().__init__()
        self._rec = rec

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> Any:
        if not dict.__contains__(self, key):
            module, _, name = key.rpartition(".")
            self._rec.globals.append(f"{module}:{name}")
            dict.__setitem__(self, key, _stub_type(self._rec, f"{module}:{name}"))
        return dict.__getitem__(self, key)


def replay_torch(data: bytes) -> Recording:
    """``torch.load(weights_only=True)`` over ``data`` with every non-built-in global a recording stub.

    Globals are recorded as ``module:name`` split at the last dot (torch only sees the dotted path).
    """
    import torch
    from torch import _weights_only_unpickler as wou

    rec = Recording()
    user = _UserGlobals(rec)
    saved = wou._get_user_allowed_globals
    wou._get_user_allowed_globals = lambda: user
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about every protocol it was not written with
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        rec.end = len(data)
    except Exception as exc:  # every way torch rejects it is a result
        rec.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        wou._get_user_allowed_globals = saved
    return rec


__all__ = ["Recording", "Stub", "replay", "replay_numpy", "replay_torch"]
