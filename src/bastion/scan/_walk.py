"""The recursive walk: detect each view's format through the handler registry and judge every reading.

A file is never judged by its extension. The walker reads a view's first bytes and hands it to the first
registered :class:`~bastion.scan.interface.FormatHandler` that matches (:mod:`bastion.scan._formats`);
containers come back here for each member, to ``max_depth``. Every reading a loader accepts is judged
(issue 19): a view whose first bytes ``pickle.load`` would decode is replayed with CPython's unpickler
(imports stubbed, :mod:`bastion.scan._oracle`); a tar header is also read as a tar when another format
matched first; an HDF5 superblock after a user block is analysed. Failures inside a handler are contained
per member (fail closed: an error, never "safe").
"""

from __future__ import annotations

import gc
import io
import os
import stat
import struct
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bastion.scan._allowlist import is_allowed, is_known_dangerous
from bastion.scan._decomp import Bomb, detect
from bastion.scan._formats import handler, handlers
from bastion.scan._formats.hdf5 import superblock_after_user_block
from bastion.scan._formats.tar import is_tar
from bastion.scan._io import Malformed, Source, SourceFile
from bastion.scan._model import FileReport, Issue, ScanConfig, ScanError, Severity, Verdict
from bastion.scan._oracle import replay
from bastion.scan._pickle import looks_like_pickle
from bastion.scan.interface import AddIssue

#: formats whose main reading already is ``pickle.load``'s (no second replay of the first bytes)
_PICKLE_READINGS = ("pickle", "joblib", "text", "json", "torch-legacy")


@dataclass
class Walker:
    """One walk over one file (implements :class:`~bastion.scan.interface.Walk`)."""

    config: ScanConfig
    path: Path
    issues: list[Issue] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    inflated: int = 0
    torchscript: bool = False  # inside a TorchScript archive
    external_data: list[str] = field(default_factory=list)
    external_spans: list[tuple[str, int, int]] = field(default_factory=list)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def adder(self, member: str) -> AddIssue:
        def add(
            rule: str,
            severity: Severity,
            message: str,
            callable_: str | None = None,
            offset: int | None = None,
        ) -> None:
            if len(self.issues) < 1000:
                self.issues.append(Issue(rule, severity, message, member, callable_, offset))

        return add

    def error(self, member: str, message: str) -> None:
        self.errors.append(ScanError(message, member))

    def note(self, member: str, message: str) -> None:
        self.members.append(f"{member or '.'}: {message}")

    def charge(self, n: int, produced: int, consumed: int, what: str) -> None:
        """Count decompressed bytes against the file's budget and the ratio bound (raises ``Bomb``)."""
        self.inflated += n
        if self.inflated > self.config.max_archive_bytes:
            raise Bomb(f"{what}: decompressed size exceeds max_archive_bytes={self.config.max_archive_bytes}")
        if produced > (1 << 20) and produced > self.config.max_archive_ratio * max(consumed, 1):
            raise Bomb(f"{what}: compression ratio above max_archive_ratio={self.config.max_archive_ratio:g}")

    # -- entry ------------------------------------------------------------------------------------------
    def scan(self, src: Source, member: str, depth: int) -> str:
        if depth > self.config.max_depth:
            self.error(member, f"containers nested deeper than max_depth={self.config.max_depth}")
            return "nested"
        try:
            fmt = self._dispatch(src, member, depth)
        except Malformed as exc:
            where = f" (offset {exc.offset})" if exc.offset is not None else ""
            self.error(member, f"{exc}{where}")
            fmt = "malformed"
        except Bomb as exc:
            self.adder(member)("archive-bomb", Severity.high, str(exc))
            fmt = "bomb"
        except RecursionError:
            self.error(member, "input nested too deeply to analyse")
            fmt = "malformed"
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, tarfile.TarError, struct.error) as exc:
            self.error(member, f"could not read ({type(exc).__name__}: {str(exc)[:120]})")
            fmt = "malformed"
        except (MemoryError, RuntimeError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # a parser (ours or h5py/onnx) met input it does not handle: fail closed, keep scanning the rest
            self.error(member, f"analysis failed ({type(exc).__name__})")
            fmt = "malformed"
        self.members.append(f"{member or '.'}: {fmt}")
        return fmt

    def _dispatch(self, src: Source, member: str, depth: int) -> str:
        if src.size == 0:
            raise Malformed("empty file")
        head = src.read_at(0, 512)
        for h in handlers():
            if h.matches(head, src):
                fmt = h.scan(self, src, member, depth)
                break
        else:
            magic = _loader_magic(head)
            raise Malformed(f"{UNRECOGNISED}; it starts like {magic}" if magic else UNRECOGNISED)
        if fmt != "malformed" and h.name == "zip" and head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
            # a zip found by its end record: the format its first bytes say is read too (issue 19, F6)
            other = next((o for o in handlers() if o.name != "zip" and o.matches(head, src)), None)
            if other is not None:
                self.note(member, f"also read as {other.name}")
                try:
                    other.scan(self, src, member, depth)
                except Malformed as exc:
                    self.error(member, f"read as {other.name}: {exc}")
        # polyglots: every other reading a loader accepts of the same bytes is judged too (issue 19, class 5)
        if fmt.split(":")[0] not in _PICKLE_READINGS and looks_like_pickle(head):
            self.replay(src, member, "pickle.load reading of the file's first bytes", strict=False)
        if fmt != "tar" and not fmt.startswith("torch-legacy-tar") and is_tar(head):
            self.note(member, "also a tar archive")
            handler("tar").scan(self, src, member, depth)
        if not fmt.startswith(("hdf5", "keras-h5")):
            at = superblock_after_user_block(src)
            if at is not None:
                self.note(member, f"HDF5 superblock at offset {at} (user block before it)")
                handler("hdf5").scan(self, src, member, depth)
        return fmt

    def replay(self, src: Source, member: str, what: str, *, strict: bool = True) -> bool:
        """Replay ``src`` with CPython's unpickler and recording stubs; flag what it reaches.

        Returns True when CPython also rejects the stream before reaching any global, call or mutation.
        """
        recs = []
        for pure in (False, True):
            with io.BufferedReader(SourceFile(src)) as fh:  # type: ignore[arg-type]
                recs.append(replay(fh, pure=pure))
        rec = recs[0]
        rec.globals += recs[1].globals
        rec.mutations += recs[1].mutations
        rec.calls += recs[1].calls
        if recs[1].error is None:
            rec.error = None
        add = self.adder(member)
        for name in dict.fromkeys(rec.globals):
            module, _, qualname = name.partition(":")
            if is_allowed(module, qualname, extra=self.config.extra_allow):
                continue
            dangerous = is_known_dangerous(module, qualname)
            rule = "pickle-dangerous-global" if dangerous else "pickle-global-not-allowed"
            sev = Severity.critical if dangerous else Severity.high
            add(rule, sev, f"{what}: imports {module}.{qualname} (not allowed)", f"{module}.{qualname}")
        for target in dict.fromkeys(rec.mutations):
            if "()" not in target.split(" ")[0]:
                add("pickle-global-mutation", Severity.high, f"{what}: mutates the imported object {target}")
        if rec.error is None:
            if strict:
                self.error(member, f"{what}: CPython's unpickler reads it, bastion's analyser does not")
            return False
        return not rec.globals and not rec.calls and not rec.mutations


def scan_source(src: Source, *, name: str, config: ScanConfig, path: Path | None = None) -> FileReport:
    """Scan a byte view (a file, a stored blob read through a seekable reader, bytes in memory)."""
    walk = Walker(config=config, path=path if path is not None else Path(name))
    # the walk allocates many small acyclic objects (the simulated pickle values): the cyclic collector's
    # passes over them cost a fifth of the scan time and find nothing; it runs again once the walk ends
    collecting = gc.isenabled()
    gc.disable()
    try:
        fmt = walk.scan(src, "", 0)
    finally:
        if collecting:
            gc.enable()

    def beside(location: str) -> str:
        return os.path.normpath(os.path.join(os.path.dirname(name), location))

    issues = tuple(dict.fromkeys(walk.issues))  # both readings of a joblib file report shared findings once
    return FileReport(
        path=name,
        format=fmt,
        size=src.size,
        issues=issues,
        errors=tuple(walk.errors),
        members=tuple(walk.members),
        external_data=tuple(dict.fromkeys(beside(x) for x in walk.external_data)),
        external_spans=tuple((beside(x), offset, length) for x, offset, length in walk.external_spans),
    )


#: the only error of a file whose bytes no handler recognises
UNRECOGNISED = "unrecognised format (not a model file bastion can analyse)"


#: first bytes some loader reads as a file of its own (never promoted to raw tensor data)
_MAGIC = (
    (b"ZF", "a joblib compat file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
    *((b"\x80" + bytes([proto]), "a pickle") for proto in range(2, 6)),
    (b"\x93NUMPY", "a NumPy array"),
    (b"\x89HDF", "an HDF5 file"),
    (b"GGUF", "a GGUF file"),
    (b"\x04\x22\x4d\x18", "an lz4 stream"),
)
#: names loaders pick a format by (a raw tensor file named like a model is not promoted)
_MODEL_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".jbl", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".h5", ".hdf5", ".keras"}
    | {".skops", ".safetensors", ".onnx", ".gguf", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".lzma"}
    | {".z", ".lz4", ".pb", ".tflite", ".msgpack", ".model"}
)


def _loader_magic(head: bytes) -> str | None:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    kind = detect(head)
    return f"a {kind} stream" if kind else None


def _covered(size: int, spans: list[tuple[int, int]]) -> bool:
    """The ranges read cover ``[0, size)`` exactly: every byte is tensor data, none read past the end."""
    if size == 0 or not spans:
        return False
    at = 0
    for offset, length in sorted(spans):
        end = size if length == -1 else offset + length
        if length < -1 or offset > at or end > size:
            return False
        at = max(at, end)
    return at == size


def accept_external_data(reports: list[FileReport]) -> list[FileReport]:
    """Raw tensor files that a safe ONNX model of the same scan reads as external data are safe.

    ``onnx.load`` reads them as raw bytes (``numpy.frombuffer``): no format, no code route. Only files that
    no handler recognised, with no loader's magic bytes and no model-file suffix, whose every byte the
    model's tensors read (offsets and lengths cover the file exactly) qualify (issue 19, finding F4).
    """
    spans: dict[str, list[tuple[int, int]]] = {}
    for r in reports:
        if r.verdict is Verdict.safe:
            for x, offset, length in r.external_spans:
                spans.setdefault(x, []).append((offset, length))
    out = []
    for r in reports:
        raw = not r.issues and len(r.errors) == 1 and r.errors[0].message == UNRECOGNISED
        key = os.path.normpath(r.path)
        named_like_model = any(s.lower() in _MODEL_SUFFIXES for s in Path(r.path).suffixes)
        if raw and not named_like_model and _covered(r.size, spans.get(key, [])):
            r = FileReport(
                r.path, "onnx-external-data", r.size, members=(".: raw tensor data of an ONNX model",)
            )
        out.append(r)
    return out


def scan_file(path: Path, config: ScanConfig) -> FileReport:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            return FileReport(str(path), "special", 0, errors=(ScanError("not a regular file"),))
        with path.open("rb") as fh:
            return scan_source(Source(fh), name=str(path), config=config, path=path)
    except OSError as exc:
        return FileReport(str(path), "unreadable", 0, errors=(ScanError(f"cannot read ({exc.strerror})"),))


__all__ = ["UNRECOGNISED", "Walker", "accept_external_data", "scan_file", "scan_source"]
