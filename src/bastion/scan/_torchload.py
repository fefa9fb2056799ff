"""Loading torch checkpoints for ``safe_load``: torch's ``weights_only`` unpickler plus exactly the
allow-listed globals the checkpoint names, for that one call (``torch.serialization.safe_globals``).

A zip checkpoint held in private memory (:mod:`bastion.scan._snapshot`) is read by torch's own zip reader
over that memory; ``data.pkl`` as that reader returns it is walked once by the static analyser (its verdict,
and the globals it names, which become the safe globals: no second parse by torch's
``get_unsafe_globals_in_checkpoint``), and the tensors are views of the same memory, the way
``torch.load(mmap=True)`` makes them views of a mapped file (torch's ``_load`` with ``overall_storage``): one
read of the file in all. Legacy checkpoints go through ``torch.load`` on the private copy's path, after a
walk of the pickles it will read.
"""

from __future__ import annotations

import functools
import inspect
import io
import mmap
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput, UnsafeArtifact
from bastion.scan._allowlist import ALIASES, ALLOWED, ENTRIES
from bastion.scan._io import BoundExceeded, Malformed, Source
from bastion.scan._model import Issue, ScanConfig, printable
from bastion.scan._pickle import analyze_pickle
from bastion.scan._unpickler import resolve

#: numpy's dtype classes: torch's weights_only unpickler BUILDs a ``numpy.dtype(...)`` result only when its
#: class is among the safe globals (``torch.save({"a": np.arange(3)})`` names ``numpy.dtype``, not the class)
_NUMPY_DTYPES = tuple(sorted(k for k in ENTRIES if k.startswith("numpy.dtypes:")))
_REFUSED = "torch refused to load with weights_only=True ({})"
_HINT = "save a state_dict (model.state_dict()) instead of a whole module"


def import_optional(name: str, extra: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise DependencyMissing(
            f"{name} is not installed", hint=f'pip install "bastion-ml[{extra}]"'
        ) from exc


def allowed_object(dotted: str, extra: frozenset[str]) -> Any:
    """The object behind a ``module.qualname`` string, if some split of it is allow-listed."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        key = f"{'.'.join(parts[:i])}:{'.'.join(parts[i:])}"
        if key in ALLOWED or key in extra:
            return resolve(ALIASES.get(key, key))
    raise UnsafeArtifact(
        f"refusing to load: the checkpoint needs {printable(dotted[:120])} (not on the allow-list)"
    )


def load_torch(path: str, fmt: str, extra: frozenset[str]) -> Any:
    """A torch checkpoint at ``path`` (a private copy) through ``torch.load(weights_only=True)``."""
    torch = import_optional("torch", "torch")
    if fmt == "torch-zip":
        try:
            record = bytes(torch._C.PyTorchFileReader(path).get_record("data.pkl"))
        except Exception as exc:
            raise InvalidInput(f"torch cannot read the checkpoint ({type(exc).__name__})") from exc
        names = judge_torch_pickle(record, extra)
    else:
        names = _legacy_globals(path, extra) if fmt == "torch-legacy" else []
    allowed = _safe_globals(names, extra)
    try:
        with torch.serialization.safe_globals(allowed):
            if fmt == "torch-zip":
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            with open(path, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidInput(_REFUSED.format(type(exc).__name__), hint=_HINT) from exc


@functools.cache
def private_load_supported() -> bool:
    """torch's ``_load(zip_file, map_location, pickle_module, overall_storage=...)`` (what torch.load with
    ``mmap=True`` calls): present in the torch versions bastion supports; otherwise the path-based load."""
    try:
        import torch.serialization

        params = inspect.signature(torch.serialization._load).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    return "overall_storage" in params and "pickle_file" in params


def load_torch_zip_buffer(buffer: mmap.mmap, extra: frozenset[str]) -> Any:
    """A zip checkpoint held in private anonymous memory, loaded without copying its tensors (views of the
    memory). Callers check :func:`private_load_supported` first (else they load from a path)."""
    torch = import_optional("torch", "torch")
    import torch._weights_only_unpickler as weights_only
    import torch.serialization as ts

    try:
        buffer.seek(0)
        reader = torch._C.PyTorchFileReader(buffer)
        record = bytes(reader.get_record("data.pkl"))
        script = ts._is_torchscript_zip(reader)
    except Exception as exc:
        raise InvalidInput(f"torch cannot read the checkpoint ({type(exc).__name__})") from exc
    if script:
        raise InvalidInput("safe_load does not load TorchScript archives (they carry code)")
    allowed = _safe_globals(judge_torch_pickle(record, extra), extra)
    storage = torch.frombuffer(buffer, dtype=torch.uint8).untyped_storage()
    try:
        with ts.safe_globals(allowed):
            return ts._load(reader, "cpu", weights_only, overall_storage=storage, encoding="utf-8")
    except Exception as exc:
        raise InvalidInput(_REFUSED.format(type(exc).__name__), hint=_HINT) from exc


def _safe_globals(names: list[str], extra: frozenset[str]) -> list[Any]:
    """The allow-listed objects behind the globals a checkpoint names, for this one load."""
    allowed: dict[int, Any] = {}
    for dotted in names:
        obj = allowed_object(dotted, extra)
        allowed[id(obj)] = obj
    import numpy as np

    if any(obj is np.dtype for obj in allowed.values()):
        for key in _NUMPY_DTYPES:
            obj = resolve(key)
            allowed[id(obj)] = obj
    return list(allowed.values())


def _legacy_globals(path: str, extra: frozenset[str]) -> list[str]:
    """The globals of a legacy checkpoint's pickles (magic, protocol, sys info, main, storage keys), judged
    again by the static walk on the bytes ``torch.load`` will read."""
    issues: list[Issue] = []
    cfg = ScanConfig(extra_allow=tuple(sorted(extra)))
    names: list[str] = []
    with open(path, "rb") as fh:
        reader = Source(fh).reader()
        try:
            for _ in range(5):
                names += analyze_pickle(reader, config=cfg, issues=issues, member="<legacy>").globals
        except (Malformed, BoundExceeded) as exc:
            raise UnsafeArtifact(
                f"refusing to load: the legacy checkpoint cannot be analysed ({exc})"
            ) from exc
    if issues:
        raise UnsafeArtifact(f"refusing to load: {printable(issues[0].message)}")
    return names


def judge_torch_pickle(record: bytes, extra: frozenset[str]) -> list[str]:
    """The static walk (imports, calls and their arguments) over ``data.pkl`` exactly as torch's own zip
    reader returns it, and the globals it names: ``torch.load`` has no deadline and calls allowed globals
    itself, so a call the scan refused must not become reachable through a zip reader that resolves the
    archive differently."""
    issues: list[Issue] = []
    cfg = ScanConfig(extra_allow=tuple(sorted(extra)))
    try:
        result = analyze_pickle(
            Source(io.BytesIO(record)).reader(), config=cfg, issues=issues, member="data.pkl"
        )
    except (Malformed, BoundExceeded) as exc:
        raise UnsafeArtifact(f"refusing to load: torch's data.pkl cannot be analysed ({exc})") from exc
    if issues:
        raise UnsafeArtifact(f"refusing to load: torch's data.pkl: {printable(issues[0].message)}")
    return result.globals


__all__ = [
    "allowed_object",
    "import_optional",
    "judge_torch_pickle",
    "load_torch",
    "load_torch_zip_buffer",
    "private_load_supported",
]
