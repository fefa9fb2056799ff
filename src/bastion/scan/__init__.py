"""Model-file scanner and safe loading: default-deny, judges without executing anything.

Entry points (keyword-only):

* :func:`scan` — analyse files and directories, returning a :class:`ScanReport` with a ``safe|unsafe|error``
  verdict per file. Formats are recognised by magic bytes and structure, never by extension: pickle (protocols
  0–5), joblib (plain and zlib/gzip/bz2/xz/lzma-compressed), PyTorch zip and legacy (pickle sequence and tar)
  checkpoints, NumPy ``.npy``/``.npz``, safetensors, Keras ``.keras``/``.h5``, ONNX, GGUF, zip and tar.
* :func:`scan_stream` / :func:`scan_bytes` — the same analysis over a seekable reader or bytes (the vault
  scans stored blobs through its range reads).
* :func:`safe_load` — load a file only after a clean scan, with loaders that enforce the allow-list themselves
  (a restricted unpickler for pickles and joblib files, ``torch.load(weights_only=True)`` with exactly the
  allow-listed globals, safetensors, ``numpy.load(allow_pickle=False)``), so even a file the static scan
  misjudged cannot execute anything.
* :func:`inspect_artifact` — the registry's inspector hook (entry point group ``bastion.inspectors``): raises
  :class:`~bastion.errors.UnsafeArtifact` with a one-line summary.
* :func:`convert` — torch state dict → safetensors.
* :func:`register_format_handler` / :func:`format_handlers` — the plug-in point for new container or file
  formats (one :class:`~bastion.scan.interface.FormatHandler` per family; the contract is in
  :mod:`bastion.scan.interface`).

The pickle analyser is an allow-list of exact ``module:qualname`` pairs generated from the installed libraries
(``allowlist.json``, :mod:`bastion.scan._gen.allowlist`), applied statically (compare picklescan and
modelscan, which use deny-lists) and again inside the loader: see :mod:`bastion.scan._pickle` and
:mod:`bastion.scan._unpickler`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from bastion.errors import InvalidInput, UnsafeArtifact
from bastion.scan._allowlist import is_allowed
from bastion.scan._formats import handlers as format_handlers
from bastion.scan._formats import register as register_format_handler
from bastion.scan._formats import unregister as unregister_format_handler
from bastion.scan._io import Source
from bastion.scan._load import Conversion, convert, safe_load, summary
from bastion.scan._model import (
    FileReport,
    Issue,
    ScanConfig,
    ScanError,
    ScanReport,
    Severity,
    Verdict,
    printable,
)
from bastion.scan._sarif import to_sarif
from bastion.scan._walk import accept_external_data, scan_file, scan_source


def _expand(path: Path) -> list[tuple[Path, FileReport | None]]:
    if not path.is_dir():
        return [(path, None)]
    out: list[tuple[Path, FileReport | None]] = []
    root = path.resolve()
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + sorted(d for d in dirnames if Path(dirpath, d).is_symlink()):
            p = Path(dirpath, name)
            if p.is_symlink():
                try:
                    target = p.resolve()
                except (RuntimeError, OSError):  # a symlink loop: an error for this path, the rest goes on
                    error = ScanError("symlink loop (cannot be resolved)")
                    out.append((p, FileReport(str(p), "symlink", 0, errors=(error,))))
                    continue
                if not target.is_relative_to(root):
                    issue = Issue(
                        "path-symlink-escape", Severity.high, "symlink points outside the scanned directory"
                    )
                    out.append((p, FileReport(str(p), "symlink", 0, issues=(issue,))))
                    continue
                if target.is_dir():
                    continue
            out.append((p, None))
    return out


def scan(*, paths: Iterable[str | os.PathLike[str]], config: ScanConfig | None = None) -> ScanReport:
    """Scan files and directories (recursively). Nothing is imported, unpickled or executed."""
    cfg = config or ScanConfig()
    targets = [Path(p) for p in paths]
    if not targets:
        raise InvalidInput("no paths to scan")
    reports: list[FileReport] = []
    for target in targets:
        if not target.exists() and not target.is_symlink():
            reports.append(FileReport(str(target), "missing", 0, errors=(ScanError("no such file"),)))
            continue
        for path, ready in _expand(target):
            reports.append(ready if ready is not None else scan_file(path, cfg))
    return ScanReport(tuple(accept_external_data(reports)))


def scan_stream(
    fileobj: BinaryIO, *, name: str = "<stream>", size: int | None = None, config: ScanConfig | None = None
) -> FileReport:
    """Scan the bytes behind a seekable binary reader (e.g. a stored blob read through range reads).

    Only ``seek``/``tell``/``read`` are used, from offset 0 to ``size`` (default: the end of the stream).
    """
    return scan_source(Source(fileobj, 0, size), name=name, config=config or ScanConfig())


def scan_bytes(
    data: bytes | bytearray | memoryview, *, name: str = "<bytes>", config: ScanConfig | None = None
) -> FileReport:
    """Scan bytes held in memory (the same analysis as :func:`scan` gives a file)."""
    return scan_stream(io.BytesIO(bytes(data)), name=name, config=config)


def allow_listed(dotted: str) -> bool:
    """Whether a ``module.qualname`` string (as skops and torch print them) is on the generated allow-list."""
    parts = dotted.split(".")
    return any(is_allowed(".".join(parts[:i]), ".".join(parts[i:])) for i in range(1, len(parts)))


def inspect_artifact(path: str | os.PathLike[str], *, config: ScanConfig | None = None) -> None:
    """Raise :class:`UnsafeArtifact` unless every file under ``path`` scans safe (errors count as unsafe)."""
    report = scan(paths=[path], config=config)
    bad = [f for f in report.files if f.verdict is not Verdict.safe]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        raise UnsafeArtifact(f"unsafe artifact: {summary(bad[0])}{more}")


__all__ = [
    "Conversion",
    "FileReport",
    "Issue",
    "ScanConfig",
    "ScanError",
    "ScanReport",
    "Severity",
    "Verdict",
    "accept_external_data",
    "allow_listed",
    "convert",
    "format_handlers",
    "inspect_artifact",
    "printable",
    "register_format_handler",
    "safe_load",
    "scan",
    "scan_bytes",
    "scan_stream",
    "summary",
    "to_sarif",
    "unregister_format_handler",
]
