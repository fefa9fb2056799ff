"""Loading only after a clean scan, and conversion of torch state dicts to safetensors."""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput, UnsafeArtifact
from bastion.scan._allowlist import ALIASES, ALLOWED, normalise_extra
from bastion.scan._decomp import KINDS, Bomb, decompress
from bastion.scan._io import BoundExceeded, Malformed, Source
from bastion.scan._model import FileReport, Issue, ScanConfig, Verdict, printable
from bastion.scan._pickle import analyze_pickle
from bastion.scan._unpickler import resolve, restricted_load
from bastion.scan._walk import scan_source

log = logging.getLogger("bastion.scan")

_TORCH = ("torch-zip", "torch-legacy", "torch-legacy-tar")
_PICKLES = ("pickle", "joblib")


def summary(report: FileReport) -> str:
    """One line describing why a file is not safe (control characters escaped)."""
    return printable(_summary(report))


def _summary(report: FileReport) -> str:
    if report.issues:
        first = report.issues[0]
        where = f" [{first.member}]" if first.member else ""
        more = f" (+{len(report.issues) - 1} more)" if len(report.issues) > 1 else ""
        return f"{report.path}{where}: {first.message}{more}"
    if report.errors:
        first_err = report.errors[0]
        where = f" [{first_err.member}]" if first_err.member else ""
        return f"{report.path}{where}: could not be analysed: {first_err.message}"
    return f"{report.path}: safe"


def _require_safe(report: FileReport) -> None:
    if report.verdict is not Verdict.safe:
        raise UnsafeArtifact(f"refusing to load {summary(report)}")


def _inner_format(fmt: str) -> str:
    return fmt.split(":")[-1]


def safe_load(
    path: str | os.PathLike[str], *, config: ScanConfig | None = None, timeout_s: float = 600.0
) -> Any:
    """Scan ``path`` and, only if it is safe, load it with a loader that enforces the allow-list itself.

    The file is first copied once into a private in-memory file (``memfd``; a private temporary file where
    that does not exist), and that snapshot is both scanned and loaded: a file swapped between check and use
    is never loaded. Loaders: torch files with ``weights_only=True`` plus exactly the allow-listed globals the
    checkpoint names (torch's safe-globals API); pickles and joblib files with :mod:`bastion.scan._unpickler`
    (the allow-list inside ``find_class``, no calls of computed values, no mutation of shared objects,
    bounded decompression and time); safetensors and NumPy without pickle.

    Limits of ``timeout_s``: it is checked on every read of the pickle and of a decompressor, so it bounds
    the parsing, not a single call: a call already running (big-integer arithmetic, an allocation) holds the
    GIL and cannot be interrupted in-process, and ``torch.load`` has no deadline. Such calls are refused
    before they run, by the scan and again by the restricted unpickler (:mod:`bastion.scan._calls`; for
    torch, a second walk over the ``data.pkl`` torch's own zip reader returns): no
    allow-listed value (ufunc) is called, ``int``/``float`` take only literals, arrays must fit in the file,
    ``Decimal``/``Fraction`` are not allowed. Loading in a killable child process would bound it, but the
    loaded tensors would have to be copied back; run untrusted loads under OS limits (``ulimit -t -v``) too.
    """
    cfg = config or ScanConfig()
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"{source}: not a file")
    extra = normalise_extra(cfg.extra_allow)
    if extra:
        log.warning("allow-list extended for %s by: %s", printable(str(source)), ", ".join(sorted(extra)))
    with _snapshot(source) as (snap, size):
        with open(snap, "rb") as fh:
            report = scan_source(Source(fh, 0, size), name=str(source), config=cfg, path=source)
        _require_safe(report)
        return _load(snap, size, report.format, cfg, extra, time.monotonic() + timeout_s)


@contextmanager
def _snapshot(source: Path) -> Iterator[tuple[str, int]]:
    """A private copy of ``source`` (same bytes for the scan and the load), as a path and a size."""
    memfd = getattr(os, "memfd_create", None)
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if memfd is not None:
            fd = memfd("bastion-load", os.MFD_CLOEXEC)  # type: ignore[attr-defined]
            try:
                copied = 0
                while copied < size:
                    n = os.sendfile(fd, src.fileno(), copied, size - copied)
                    if n == 0:
                        break
                    copied += n
                yield f"/proc/self/fd/{fd}", copied
            finally:
                os.close(fd)
            return
        with tempfile.TemporaryDirectory(prefix="bastion-load-") as tmp:
            private = Path(tmp) / "artifact"
            with open(private, "wb") as out:
                shutil.copyfileobj(src, out, 16 << 20)
            yield str(private), private.stat().st_size


def _load(
    path: str, size: int, full_format: str, cfg: ScanConfig, extra: frozenset[str], deadline: float
) -> Any:
    fmt = _inner_format(full_format)
    if fmt in _TORCH:
        return _load_torch(path, fmt, extra)
    if fmt == "safetensors":
        try:
            from safetensors.torch import load_file as load_torch

            return load_torch(path)
        except ImportError:
            from safetensors.numpy import load_file as load_numpy

            return load_numpy(path)
    if fmt in ("npy", "npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if fmt == "npz":
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    if fmt in _PICKLES:
        if full_format != fmt and full_format.split(":", 1)[0] not in KINDS:
            raise InvalidInput(f"cannot load a {full_format} file")
        return _load_pickle(path, size, full_format, cfg, extra, deadline)
    if fmt == "npy-object":
        raise InvalidInput(
            "object arrays need pickle: safe_load loads NumPy files with allow_pickle=False",
            hint="store numeric arrays (or safetensors) instead",
        )
    if fmt == "onnx":
        onnx = _import("onnx", "scan")
        return onnx.load(path, load_external_data=False)
    if fmt == "skops" and full_format == fmt:
        return _load_skops(path, extra)
    if fmt == "keras" and full_format == fmt:
        return _load_keras(path)
    if fmt == "keras-h5":
        raise InvalidInput(
            "safe_load loads Keras models in the .keras format, not legacy HDF5 (.h5) models",
            hint="re-save the model with model.save('model.keras')",
        )
    raise InvalidInput(f"safe_load does not load {full_format} files")


def _load_pickle(
    path: str, size: int, full_format: str, cfg: ScanConfig, extra: frozenset[str], deadline: float
) -> Any:
    kind = full_format.split(":", 1)[0]
    joblib = full_format.endswith("joblib")
    with open(path, "rb") as fh:
        if kind not in KINDS:
            return restricted_load(
                fh, size=size, extra=extra, joblib=joblib, timeout_s=deadline - time.monotonic()
            )
        inflated = 0

        def charge(n: int, produced: int, consumed: int) -> None:
            nonlocal inflated
            inflated += n
            if inflated > cfg.max_archive_bytes:
                raise Bomb(f"decompressed size exceeds max_archive_bytes={cfg.max_archive_bytes}")
            if produced > (1 << 20) and produced > cfg.max_archive_ratio * max(consumed, 1):
                raise Bomb(f"compression ratio above max_archive_ratio={cfg.max_archive_ratio:g}")

        try:
            inner = decompress(Source(fh, 0, size), kind, charge=charge, deadline=deadline)
        except (Bomb, Malformed) as exc:
            raise UnsafeArtifact(f"refusing to load: {exc}") from exc
        with inner.fh:
            inner.fh.seek(0)
            return restricted_load(
                inner.fh, size=inner.size, extra=extra, joblib=joblib, timeout_s=deadline - time.monotonic()
            )


def _load_torch(path: str, fmt: str, extra: frozenset[str]) -> Any:
    torch = _import("torch", "torch")
    allowed: list[Any] = []
    if fmt == "torch-zip":
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            record = bytes(torch._C.PyTorchFileReader(path).get_record("data.pkl"))
        except Exception as exc:
            raise InvalidInput(f"torch cannot read the checkpoint ({type(exc).__name__})") from exc
        _judge_torch_pickle(record, extra)
        for dotted in names:
            allowed.append(_allowed_object(dotted, extra))
    try:
        with torch.serialization.safe_globals(allowed):
            if fmt == "torch-zip":
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            with open(path, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidInput(
            f"torch refused to load with weights_only=True ({type(exc).__name__})",
            hint="save a state_dict (model.state_dict()) instead of a whole module",
        ) from exc


def _judge_torch_pickle(record: bytes, extra: frozenset[str]) -> None:
    """The static walk (imports, calls and their arguments) over ``data.pkl`` exactly as torch's own zip
    reader returns it: ``torch.load`` has no deadline and calls allowed globals itself, so a call the scan
    refused must not become reachable through a zip reader that resolves the archive differently."""
    issues: list[Issue] = []
    cfg = ScanConfig(extra_allow=tuple(sorted(extra)))
    try:
        analyze_pickle(Source(io.BytesIO(record)).reader(), config=cfg, issues=issues, member="data.pkl")
    except (Malformed, BoundExceeded) as exc:
        raise UnsafeArtifact(f"refusing to load: torch's data.pkl cannot be analysed ({exc})") from exc
    if issues:
        raise UnsafeArtifact(f"refusing to load: torch's data.pkl: {printable(issues[0].message)}")


def _load_skops(path: str, extra: frozenset[str]) -> Any:
    """skops' own loader, trusting exactly the types it reports that are on the allow-list (else refused)."""
    _import("skops", "torch")
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise InvalidInput(f"skops cannot read the file ({type(exc).__name__})") from exc
    for dotted in untrusted:
        _allowed_object(dotted, extra)  # raises UnsafeArtifact for a type outside the allow-list
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise InvalidInput(f"skops refused to load the file ({type(exc).__name__})") from exc


def _load_keras(path: str) -> Any:
    """Keras' own loader with ``safe_mode=True`` (no lambda deserialization), after a scan that found no
    Lambda layer, custom object or module outside keras. Keras picks the format by the name's suffix, so it is
    given a private symlink with that suffix to the same snapshot."""
    try:
        import keras
    except ImportError as exc:
        raise DependencyMissing(
            "keras is not installed", hint="pip install keras (Keras 3, e.g. on torch)"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="bastion-keras-") as tmp:
        named = Path(tmp) / "model.keras"
        named.symlink_to(path)
        try:
            return keras.saving.load_model(str(named), compile=False, safe_mode=True)
        except Exception as exc:
            raise InvalidInput(f"keras refused to load the model ({type(exc).__name__})") from exc


def _allowed_object(dotted: str, extra: frozenset[str]) -> Any:
    """The object behind a ``module.qualname`` string torch reports, if some split of it is allow-listed."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        key = f"{'.'.join(parts[:i])}:{'.'.join(parts[i:])}"
        if key in ALLOWED or key in extra:
            return resolve(ALIASES.get(key, key))
    raise UnsafeArtifact(
        f"refusing to load: the checkpoint needs {printable(dotted[:120])} (not on the allow-list)"
    )


def _import(name: str, extra: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise DependencyMissing(
            f"{name} is not installed", hint=f'pip install "bastion-ml[{extra}]"'
        ) from exc


@dataclass(frozen=True)
class Conversion:
    src: str
    dst: str
    tensors: int
    bytes: int


def convert(
    *, src: str | os.PathLike[str], dst: str | os.PathLike[str], config: ScanConfig | None = None
) -> Conversion:
    """Convert a torch state dict (zip or legacy format) to safetensors, after a clean scan."""
    torch = _import("torch", "torch")
    try:
        from safetensors.torch import save_file
    except ImportError as exc:
        raise DependencyMissing(
            "safetensors is not installed", hint='pip install "bastion-ml[torch]"'
        ) from exc
    loaded = safe_load(src, config=config)
    if not isinstance(loaded, Mapping):
        raise InvalidInput("only torch state dicts (a mapping of names to tensors) can be converted")
    tensors: dict[str, Any] = {}
    todo: list[tuple[str, Any]] = list(loaded.items())
    while todo:
        key, value = todo.pop()
        if isinstance(value, Mapping):
            todo.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, torch.Tensor):
            tensors[str(key)] = value.detach().cpu().contiguous().clone()
        else:
            raise InvalidInput(f"state dict entry {str(key)[:80]!r} is not a tensor ({type(value).__name__})")
    if not tensors:
        raise InvalidInput("the state dict holds no tensors")
    out = Path(dst)
    tmp = out.with_name(out.name + ".partial")
    save_file(tensors, str(tmp))
    tmp.replace(out)
    return Conversion(str(src), str(out), len(tensors), out.stat().st_size)


__all__ = ["Conversion", "convert", "safe_load", "summary"]
