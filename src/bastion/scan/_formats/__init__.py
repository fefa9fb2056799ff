"""The registry of format handlers (:class:`~bastion.scan.interface.FormatHandler`), one module per family.

The walker asks the handlers in this order whether they match a view's first bytes; the first that does
scans it. The order encodes which reading wins when several could: zip first (an end-of-central-directory
record at the end makes a file a zip for ``zipfile`` and torch, whatever comes before it), then the formats
with an unambiguous magic, compressed streams, tar, safetensors, pickle (whose first byte can be almost
anything), ONNX (a protobuf starts with ``0x08``) and text last. Other readings of the same bytes (a pickle
prefix, a tar header, an HDF5 superblock after a user block) are judged by the walker in addition.

A new family plugs in with :func:`register` (``before="pickle"`` to be asked ahead of a family); it must pass
the conformance test ``tests/scan/test_handlers.py``, which runs over every registered handler.
"""

from __future__ import annotations

from bastion.errors import InvalidInput
from bastion.scan._formats.compressed import COMPRESSED, JOBLIB_COMPAT, LZ4
from bastion.scan._formats.gguf import GGUF
from bastion.scan._formats.hdf5 import HDF5
from bastion.scan._formats.numpy import NPY
from bastion.scan._formats.onnx import ONNX
from bastion.scan._formats.pickle import PICKLE
from bastion.scan._formats.safetensors import SAFETENSORS
from bastion.scan._formats.tar import TAR
from bastion.scan._formats.text import TEXT
from bastion.scan._formats.zip import ZIP
from bastion.scan.interface import FormatHandler

_REGISTRY: list[FormatHandler] = [
    ZIP,
    NPY,
    GGUF,
    HDF5,
    COMPRESSED,
    JOBLIB_COMPAT,
    LZ4,
    TAR,
    SAFETENSORS,
    PICKLE,
    ONNX,
    TEXT,
]


def handlers() -> tuple[FormatHandler, ...]:
    """The registered handlers, in the order the walker asks them."""
    return tuple(_REGISTRY)


def handler(name: str) -> FormatHandler:
    for h in _REGISTRY:
        if h.name == name:
            return h
    raise InvalidInput(f"no format handler named {name!r}")


def register(new: FormatHandler, *, before: str | None = None) -> None:
    """Add a handler (asked last, or just before the handler named ``before``); names must be unique."""
    if any(h.name == new.name for h in _REGISTRY):
        raise InvalidInput(f"a format handler named {new.name!r} is already registered")
    at = len(_REGISTRY) if before is None else _REGISTRY.index(handler(before))
    _REGISTRY.insert(at, new)


def unregister(name: str) -> None:
    _REGISTRY.remove(handler(name))


__all__ = ["handler", "handlers", "register", "unregister"]
