"""Loading only after a clean scan, and conversion of torch state dicts to safetensors."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput, UnsafeArtifact
from bastion.scan._model import FileReport, ScanConfig, Verdict, printable
from bastion.scan._scanner import scan_file

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


def safe_load(path: str | os.PathLike[str], *, config: ScanConfig | None = None) -> Any:
    """Scan ``path`` and, only if it is safe, load it with a loader that cannot run code either.

    The file is first copied to a private temporary file, and that copy is both scanned and loaded, so a file
    swapped between check and use is never loaded. torch files load with ``weights_only=True``, safetensors
    and NumPy without pickle, pickles/joblib only after the allow-list scan found nothing.
    """
    cfg = config or ScanConfig()
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"{source}: not a file")
    with tempfile.TemporaryDirectory(prefix="bastion-load-") as tmp:
        private = Path(tmp) / "artifact"
        shutil.copyfile(source, private)
        report = scan_file(private, cfg)
        report = FileReport(
            str(source), report.format, report.size, report.issues, report.errors, report.members
        )
        _require_safe(report)
        return _load(private, _inner_format(report.format), report.format)


def _load(path: Path, fmt: str, full_format: str) -> Any:
    if fmt in _TORCH:
        torch = _import("torch", "torch")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InvalidInput(
                f"torch refused to load with weights_only=True ({type(exc).__name__})",
                hint="save a state_dict (model.state_dict()) instead of a whole module",
            ) from exc
    if fmt == "safetensors":
        try:
            from safetensors.torch import load_file as load_torch

            return load_torch(str(path))
        except ImportError:
            from safetensors.numpy import load_file as load_numpy

            return load_numpy(str(path))
    if fmt in ("npy", "npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if fmt == "npz":
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    if fmt in _PICKLES:
        import joblib

        if full_format != fmt and not full_format.startswith(("gzip:", "bz2:", "xz:", "lzma:", "zlib:")):
            raise InvalidInput(f"cannot load a {full_format} file")
        return joblib.load(path)
    if fmt == "npy-object":
        raise InvalidInput(
            "object arrays need pickle: safe_load loads NumPy files with allow_pickle=False",
            hint="store numeric arrays (or safetensors) instead",
        )
    if fmt == "onnx":
        onnx = _import("onnx", "scan")
        return onnx.load(str(path))
    raise InvalidInput(f"safe_load does not load {full_format} files")


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
