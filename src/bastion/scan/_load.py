"""Loading only after a clean scan, and conversion of torch state dicts to safetensors."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput, UnsafeArtifact
from bastion.scan._allowlist import normalise_extra
from bastion.scan._decomp import KINDS, Bomb, decompress
from bastion.scan._io import Malformed, Source
from bastion.scan._model import FileReport, ScanConfig, Verdict, printable
from bastion.scan._snapshot import snapshot
from bastion.scan._torchload import (
    allowed_object,
    import_optional,
    load_torch,
    load_torch_zip_buffer,
    private_load_supported,
)
from bastion.scan._unpickler import restricted_load
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

    The file is first read once into private memory (:mod:`bastion.scan._snapshot`: anonymous memory for zip
    archives, a ``memfd`` otherwise), and that snapshot is both scanned and loaded: a file swapped between
    check and use is never loaded; a torch zip checkpoint's tensors are views of that memory (no second
    copy). Loaders: torch files with ``weights_only=True`` plus exactly the allow-listed globals the
    checkpoint names (torch's safe-globals API); pickles and joblib files with :mod:`bastion.scan._unpickler`
    (the allow-list inside ``find_class``, no calls of computed values, no mutation of shared objects,
    bounded decompression and time); safetensors and NumPy without pickle.

    Limits of ``timeout_s``: it is checked on every read of the pickle and of a decompressor, so it bounds
    the parsing, not a single call: a call already running (big-integer arithmetic, an allocation) holds the
    GIL and cannot be interrupted in-process, and ``torch.load`` has no deadline. Such calls are refused
    before they run, by the scan and again by the restricted unpickler (:mod:`bastion.scan._calls`; for
    torch, a second walk over the ``data.pkl`` torch's own zip reader returns): no
    allow-listed value (ufunc) is called, ``int``/``float`` take only literals, arrays must fit in the file,
    ``Decimal``/``Fraction`` are not allowed. There is no in-process way to enforce a deadline on such a
    call, and a killable child process would have to send the loaded objects back through a second
    (restricted) load with the same limit, so ``safe_load`` offers none: where a hard bound is needed, run
    the load in a process of its own under OS limits, e.g. ``prlimit --cpu=120 --as=$((8<<30)) python
    load.py`` (``ulimit -t -v``), and treat its death as a refusal.
    """
    cfg = config or ScanConfig()
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"{source}: not a file")
    extra = normalise_extra(cfg.extra_allow)
    if extra:
        log.warning("allow-list extended for %s by: %s", printable(str(source)), ", ".join(sorted(extra)))
    with snapshot(source) as snap:
        report = scan_source(Source(snap.file(), 0, snap.size), name=str(source), config=cfg, path=source)
        _require_safe(report)
        if report.format == "torch-zip" and snap.buffer is not None and private_load_supported():
            return load_torch_zip_buffer(snap.buffer, extra)
        return _load(snap.path(), snap.size, report.format, cfg, extra, time.monotonic() + timeout_s)


def _load(
    path: str, size: int, full_format: str, cfg: ScanConfig, extra: frozenset[str], deadline: float
) -> Any:
    fmt = _inner_format(full_format)
    if fmt in _TORCH:
        return load_torch(path, fmt, extra)
    if fmt == "safetensors":
        try:
            from safetensors.torch import load_file as load_st_torch

            return load_st_torch(path)
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
        onnx = import_optional("onnx", "scan")
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


def _load_skops(path: str, extra: frozenset[str]) -> Any:
    """skops' own loader, trusting exactly the types it reports that are on the allow-list (else refused)."""
    import_optional("skops", "torch")
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise InvalidInput(f"skops cannot read the file ({type(exc).__name__})") from exc
    for dotted in untrusted:
        allowed_object(dotted, extra)  # raises UnsafeArtifact for a type outside the allow-list
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
    torch = import_optional("torch", "torch")
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


_load_torch = load_torch  # the path-based torch loader (tests feed it files with the scan bypassed)

__all__ = ["Conversion", "convert", "safe_load", "summary"]
