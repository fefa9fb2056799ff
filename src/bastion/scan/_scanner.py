"""Format detection by magic bytes and structure, and the recursive walk through containers.

A file is never judged by its extension. Containers (zip, tar, gzip/bz2/xz/zlib streams) are opened
with bounded streaming decompression and walked to ``max_depth``; every member is detected and analysed
in turn, and the archive structure itself is checked (local header vs central directory, CRCs, duplicate
names, traversal, overlapping entries, prefix data of polyglots).

Every reading a loader accepts is judged (issue 19): a container whose first bytes ``pickle.load`` would
decode is replayed with CPython's unpickler (imports stubbed, :mod:`bastion.scan._oracle`); a tar header is
also read as a tar when another format matched first; an HDF5 superblock after a user block is analysed; a
torch zip is opened with torch's own reader and refused when it sees other records or ``.pkl`` bytes than
Python's ``zipfile``; a stream that starts like a pickle and fails to parse is text only when CPython's C and
pure-Python unpicklers also reject it before reaching anything.
"""

from __future__ import annotations

import io
import itertools
import lzma
import re
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.scan._allowlist import STORAGE_ELEMENT_SIZE, is_allowed, is_known_dangerous, normalise_extra
from bastion.scan._decomp import Bomb, decompress, detect, feed
from bastion.scan._formats import (
    _loads_json,
    check_gguf,
    check_keras_config,
    check_onnx,
    check_safetensors,
    looks_like_safetensors,
    parse_npy_header,
    path_traversal,
)
from bastion.scan._io import CHUNK, BoundExceeded, Malformed, Reader, Source
from bastion.scan._model import FileReport, Issue, ScanConfig, ScanError, Severity
from bastion.scan._oracle import replay
from bastion.scan._pickle import JOBLIB_WRAPPER as JOBLIB
from bastion.scan._pickle import Global, PickleAnalyzer, analyze_pickle, looks_like_pickle, plain
from bastion.scan._skops import check_skops_schema, looks_like_skops_schema

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_TORCH_PROTOCOL = 1001
_TORCH_DATA = re.compile(r"(?:[^/]*/)?data/\d+")
_LEGACY_TAR = frozenset({"sys_info", "pickle", "storages", "tensors"})


_Bomb = Bomb


class SourceFile(io.RawIOBase):
    """A file object over a :class:`Source` (for zipfile, tarfile and h5py)."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.src.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.src.size - self._pos
        data = self.src.read_at(self._pos, n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@dataclass
class _Walk:
    config: ScanConfig
    path: Path
    issues: list[Issue] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    inflated: int = 0
    torchscript: bool = False  # inside a TorchScript archive

    # -- bookkeeping ------------------------------------------------------------------------------------
    def adder(self, member: str) -> Any:
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
        except _Bomb as exc:
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
        fmt = self._main_view(src, head, member, depth)
        # polyglots: every other reading a loader accepts of the same bytes is judged too (issue 19, class 5)
        if fmt.split(":")[0] not in (
            "pickle",
            "joblib",
            "text",
            "json",
            "torch-legacy",
        ) and looks_like_pickle(head):
            self._replay(src, member, "pickle.load reading of the file's first bytes", strict=False)
        if fmt != "tar" and not fmt.startswith("torch-legacy-tar") and _is_tar(head):
            self.members.append(f"{member or '.'}: also a tar archive")
            self._tar(src, member, depth)
        if not fmt.startswith(("hdf5", "keras-h5")):
            at = _hdf5_superblock(src)
            if at is not None:
                self.members.append(f"{member or '.'}: HDF5 superblock at offset {at} (user block before it)")
                self._hdf5(src, member)
        return fmt

    def _main_view(self, src: Source, head: bytes, member: str, depth: int) -> str:
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or _find_eocd(src) is not None:
            return self._zip(src, member, depth)
        if head[:6] == b"\x93NUMPY":
            return self._npy(src, member)
        if head[:4] == b"GGUF":
            check_gguf(src, self.config, self.adder(member))
            return "gguf"
        if head[:8] == b"\x89HDF\r\n\x1a\n":
            return self._hdf5(src, member)
        kind = detect(head)
        if kind is not None:
            return self._stream(src, member, depth, kind)
        if head[:4] == b"\x04\x22\x4d\x18":
            raise Malformed('lz4-compressed streams (joblib compress="lz4") are not supported')
        if _is_tar(head):
            return self._tar(src, member, depth)
        if looks_like_safetensors(head, src.size):
            check_safetensors(src, self.config)
            return "safetensors"
        if looks_like_pickle(head):
            return self._pickle(src, member, depth, text_ok=head[0] != 0x80)
        if head[:1] == b"\x08":
            check_onnx(src, self.config, self.adder(member), model_dir=self._model_dir(member))
            return "onnx"
        if _is_text(src):
            return self._text(src, member)
        raise Malformed("unrecognised format (not a model file bastion can analyse)")

    def _model_dir(self, member: str) -> Path | None:
        return self.path.parent if not member else None

    # -- leaf formats -----------------------------------------------------------------------------------
    def _text(self, src: Source, member: str) -> str:
        first = src.read_at(0, 64).removeprefix(b"\xef\xbb\xbf").lstrip()  # json.loads accepts a BOM
        if first[:1] in (b"{", b"[") and src.size <= self.config.max_header_bytes:
            try:
                check_keras_config(src.read_at(0, src.size), self.adder(member), what="JSON")
                return "json"
            except Malformed:
                return "text"
        return "text"

    def _npy(self, src: Source, member: str) -> str:
        dtype, shape, offset = parse_npy_header(src, self.config)
        if dtype.hasobject:
            analyze_pickle(src.reader(offset), config=self.config, issues=self.issues, member=member)
            return "npy-object"
        count = 1
        for d in shape:
            count *= d
        if offset + count * dtype.itemsize > src.size:
            raise Malformed(".npy data is shorter than its header says")
        return "npy"

    def _hdf5(self, src: Source, member: str) -> str:
        try:
            import h5py
        except ImportError as exc:
            raise Malformed("the h5py package is needed to analyse HDF5 files (extra 'scan')") from exc
        fmt = "hdf5"
        try:
            with h5py.File(SourceFile(src), "r") as h5:
                for attr in ("model_config", "training_config"):
                    if attr in h5.attrs:
                        value = h5.attrs[attr]
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        check_keras_config(raw, self.adder(member), what=f"HDF5 {attr}")
                        fmt = "keras-h5"
        except (OSError, KeyError, TypeError) as exc:
            raise Malformed(f"unreadable HDF5 ({type(exc).__name__})") from exc
        return fmt

    # -- pickles ----------------------------------------------------------------------------------------
    def _pickle(self, src: Source, member: str, depth: int, *, text_ok: bool) -> str:
        r = src.reader()
        before = len(self.issues)
        analyzer = PickleAnalyzer(
            r, config=self.config, issues=self.issues, member=member, torchscript=self.torchscript
        )
        try:
            res = analyzer.run()
        except BoundExceeded:
            raise
        except Malformed:
            if analyzer.wrappers or JOBLIB in analyzer.globals:  # joblib's array data: see _joblib
                if analyzer.wrappers:  # past the first wrapper, CPython's own reading is judged (replay)
                    del self.issues[analyzer.issues_at_wrapper :]
                return self._joblib(src, member)
            # text that merely starts like a pickle, if CPython's unpickler (C and pure Python) agrees
            if text_ok and len(self.issues) == before and _is_text(src) and self._replay(src, member, "text"):
                return self._text(src, member)
            raise
        if isinstance(res.value, int) and res.value == LEGACY_TORCH_MAGIC:
            return self._torch_legacy(r, member)
        if analyzer.wrappers or JOBLIB in analyzer.globals:
            if analyzer.wrappers:
                del self.issues[analyzer.issues_at_wrapper :]
            return self._joblib(src, member)
        self._trailing(r, member)
        return "pickle"

    def _joblib(self, src: Source, member: str) -> str:
        """A pickle holding joblib array wrappers: judge both readings (``pickle.load``, ``joblib.load``)."""
        r = src.reader()
        try:
            analyze_pickle(
                r,
                config=self.config,
                issues=self.issues,
                member=member,
                torchscript=self.torchscript,
                joblib=True,
            )
            self._trailing(r, member)
        finally:  # after the analysis, so its findings (with offsets) come first
            self._replay(src, member, "pickle.load reading of a joblib file")
        return "joblib"

    def _replay(self, src: Source, member: str, what: str, *, strict: bool = True) -> bool:
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
            rule = (
                "pickle-dangerous-global"
                if is_known_dangerous(module, qualname)
                else "pickle-global-not-allowed"
            )
            sev = Severity.critical if rule == "pickle-dangerous-global" else Severity.high
            add(rule, sev, f"{what}: imports {module}.{qualname} (not allowed)", f"{module}.{qualname}")
        for target in dict.fromkeys(rec.mutations):
            if "()" not in target.split(" ")[0]:
                add("pickle-global-mutation", Severity.high, f"{what}: mutates the imported object {target}")
        if rec.error is None:
            if strict:
                self.error(member, f"{what}: CPython's unpickler reads it, bastion's analyser does not")
            return False
        return not rec.globals and not rec.calls and not rec.mutations

    def _trailing(self, r: Reader, member: str) -> None:
        while r.remaining() > 0:
            if not looks_like_pickle(r.peek(2)):
                self.members.append(f"{member or '.'}: {r.remaining()} trailing bytes after the pickle")
                break
            try:
                analyze_pickle(
                    r, config=self.config, issues=self.issues, member=member, torchscript=self.torchscript
                )
            except Malformed:
                self.members.append(f"{member or '.'}: trailing bytes after the pickle are not a pickle")
                break

    def _torch_legacy(self, r: Reader, member: str) -> str:
        def next_pickle() -> Any:
            return analyze_pickle(r, config=self.config, issues=self.issues, member=member)

        if next_pickle().value != LEGACY_TORCH_PROTOCOL:
            raise Malformed("legacy torch file with an unknown protocol version")
        next_pickle()  # sys_info
        main = next_pickle()
        keys = plain(next_pickle().value)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise Malformed("legacy torch storage key list is not a list of strings")
        sizes: dict[str, int] = {}
        for pid in main.persistent:
            if (
                isinstance(pid, tuple)
                and len(pid) >= 3
                and pid[0] == "storage"
                and isinstance(pid[1], Global)
            ):
                size = STORAGE_ELEMENT_SIZE.get(pid[1].name)
                if size is None:
                    raise Malformed(f"legacy torch storage type {pid[1].full} unknown")
                sizes[str(pid[2])] = size
        for key in keys:
            if key not in sizes:
                raise Malformed(f"legacy torch storage {key!r} has no type")
            numel = int.from_bytes(r.read(8), "little", signed=True)
            if numel < 0:
                raise Malformed("legacy torch storage with a negative size")
            r.skip(numel * sizes[key])
        if r.remaining():
            self.members.append(f"{member or '.'}: {r.remaining()} trailing bytes after the storages")
        return "torch-legacy"

    def _torch_tar_records(self, src: Source, name: str, member: str) -> None:
        r = src.reader()

        def next_value() -> Any:
            return plain(analyze_pickle(r, config=self.config, issues=self.issues, member=member).value)

        count = next_value()
        if not isinstance(count, int) or count < 0 or count > self.config.max_archive_members:
            raise Malformed(f"legacy torch tar '{name}' record count invalid")
        for _ in range(count):
            record = next_value()
            if not isinstance(record, tuple) or len(record) != 3:
                raise Malformed(f"legacy torch tar '{name}' record invalid")
            if name == "storages":
                storage_type = record[2]
                size = (
                    STORAGE_ELEMENT_SIZE.get(storage_type.name) if isinstance(storage_type, Global) else None
                )
                if size is None:
                    raise Malformed("legacy torch tar storage type unknown")
                r.skip(int.from_bytes(r.read(8), "little") * size)
            else:
                ndim = int.from_bytes(r.read(4), "little", signed=True)
                if not 0 <= ndim <= 64:
                    raise Malformed("legacy torch tar tensor rank invalid")
                r.skip(4 + 16 * ndim + 8)

    # -- compressed streams -----------------------------------------------------------------------------
    def _stream(self, src: Source, member: str, depth: int, kind: str) -> str:
        inner = self._decompress(src, kind, member)
        try:
            fmt = self.scan(inner, f"{member}!<{kind}>" if member else f"<{kind}>", depth + 1)
        finally:
            inner.fh.close()
        return f"{kind}:{fmt}"

    def _decompress(self, src: Source, kind: str, member: str) -> Source:
        what = member or kind

        def charge(n: int, produced: int, consumed: int) -> None:
            self._charge(n, produced, consumed, what)

        def note(message: str) -> None:
            self.members.append(f"{member or '.'}: {message}")

        return decompress(src, kind, charge=charge, note=note)

    def _charge(self, n: int, produced: int, consumed: int, what: str) -> None:
        self.inflated += n
        if self.inflated > self.config.max_archive_bytes:
            raise _Bomb(
                f"{what}: decompressed size exceeds max_archive_bytes={self.config.max_archive_bytes}"
            )
        if produced > (1 << 20) and produced > self.config.max_archive_ratio * max(consumed, 1):
            raise _Bomb(
                f"{what}: compression ratio above max_archive_ratio={self.config.max_archive_ratio:g}"
            )

    # -- zip --------------------------------------------------------------------------------------------
    def _zip(self, src: Source, member: str, depth: int) -> str:
        add = self.adder(member)
        try:
            zf = zipfile.ZipFile(SourceFile(src))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise Malformed(f"invalid zip archive ({exc})") from exc
        infos = zf.infolist()
        if len(infos) > self.config.max_archive_members:
            raise Malformed("zip has more members than max_archive_members")
        names = [i.filename for i in infos]
        is_torch = any(n.endswith("data.pkl") for n in names) and any(
            n == "version" or n.endswith(("/version", ".data/version")) for n in names
        )
        is_keras = "config.json" in names  # Keras reads config.json with or without metadata.json
        is_script = (
            is_torch
            and any("/code/__torch__/" in n for n in names)
            and any(n.endswith("constants.pkl") for n in names)
        )
        fmt = "torchscript" if is_script else "torch-zip" if is_torch else "keras" if is_keras else "zip"
        if names and all(n.endswith(".npy") for n in names):
            fmt = "npz"
        seen: set[str] = set()
        spans: list[tuple[int, int, str]] = []
        outer_script, self.torchscript = self.torchscript, is_script
        try:
            for info in infos:
                name = info.filename
                child = f"{member}!{name}" if member else name
                if name in seen:
                    add(
                        "archive-duplicate-name",
                        Severity.high,
                        f"zip holds {name!r} more than once",
                        offset=None,
                    )
                seen.add(name)
                if path_traversal(name):
                    add("archive-path-traversal", Severity.high, f"zip member name {name[:120]!r} escapes")
                data_start = self._zip_local_header(src, info, add)
                spans.append((info.header_offset, data_start + info.compress_size, name))
                if data_start + info.compress_size > src.size:
                    raise Malformed(f"zip member {name!r} runs past the end of the archive")
                if info.flag_bits & 0x1:
                    self.error(child, "encrypted archive member: bastion cannot analyse encrypted archives")
                    continue
                if name.endswith("/"):
                    continue
                if is_torch and _TORCH_DATA.fullmatch(name):
                    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                        add(
                            "zip-tensor-compressed",
                            Severity.medium,
                            f"tensor data {name!r} is not stored raw",
                        )
                    continue
                raw = src.window(data_start, info.compress_size)
                try:
                    view = self._zip_member(raw, info, child)
                except _Bomb as exc:
                    self.adder(child)("archive-bomb", Severity.high, str(exc))
                    continue
                except Malformed as exc:
                    self.error(child, str(exc))
                    continue
                try:
                    if self._crc(view) != info.CRC:
                        self.adder(child)(
                            "zip-crc-mismatch", Severity.medium, f"CRC of {name!r} does not match"
                        )
                    if is_keras and name == "config.json":
                        check_keras_config(view.read_at(0, view.size), self.adder(child), what="config.json")
                        self.members.append(f"{child}: keras-config")
                    elif name == "schema.json" and self._skops_schema(view, child):
                        fmt = "skops"
                    else:
                        self.scan(view, child, depth + 1)
                except Malformed as exc:
                    self.error(child, str(exc))
                finally:
                    if view.fh is not src.fh:
                        view.fh.close()
        finally:
            self.torchscript = outer_script
        spans.sort()
        for (_a_start, a_end, a_name), (b_start, _, b_name) in itertools.pairwise(spans):
            if b_start < a_end:
                add(
                    "zip-overlapping-entries", Severity.high, f"zip entries {a_name!r} and {b_name!r} overlap"
                )
        # bytes before the first record (or before the central directory of a zip with no members): a
        # pickle there is what pickle.load, and torch.load's legacy path, would read
        first = min([s for s, _, _ in spans] + [zf.start_dir])  # type: ignore[attr-defined]
        if is_torch:
            self._torch_reader_agrees(src, zf, infos, add)
        if first > 0:
            self.scan(src.window(0, first), f"{member}!<prefix>" if member else "<prefix>", depth + 1)
        return fmt

    def _torch_reader_agrees(self, src: Source, zf: zipfile.ZipFile, infos: list[Any], add: Any) -> None:
        """Open the archive with torch's own reader (miniz) and refuse when it sees other records or bytes."""
        try:
            import torch
        except ImportError:
            return
        try:
            reader = torch._C.PyTorchFileReader(io.BufferedReader(SourceFile(src)))  # type: ignore[arg-type]
            records = set(reader.get_all_records())
        except Exception as exc:  # torch raises RuntimeError (and others) for everything it cannot read
            add(
                "zip-reader-differential",
                Severity.high,
                f"torch's zip reader rejects the archive ({exc!s:.80})",
            )
            return
        ours: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            ours[name.split("/", 1)[1] if "/" in name else name] = info
        if records != {n for n in ours if not n.endswith("/")}:
            add(
                "zip-reader-differential",
                Severity.high,
                "torch's zip reader and Python's zipfile list different records",
            )
            return
        for name in sorted(records):
            if _TORCH_DATA.fullmatch(name) or name.startswith("data/"):
                continue
            info = ours[name]
            if info.file_size > self.config.max_header_bytes:
                continue
            if bytes(reader.get_record(name)) != zf.read(info):
                add(
                    "zip-reader-differential",
                    Severity.high,
                    f"torch's zip reader and Python's zipfile read different bytes for {name[:80]!r}",
                )

    def _skops_schema(self, view: Source, child: str) -> bool:
        """Judge a zip's ``schema.json`` as a skops schema when it has skops' shape (else: not handled)."""
        if view.size > self.config.max_header_bytes:
            raise Malformed(f"schema.json larger than max_header_bytes={self.config.max_header_bytes}")
        try:
            doc = _loads_json(view.read_at(0, view.size), "schema.json")
        except Malformed:
            return False
        if not looks_like_skops_schema(doc):
            return False
        nodes = check_skops_schema(doc, self.adder(child), extra=normalise_extra(self.config.extra_allow))
        self.members.append(f"{child}: skops-schema ({nodes} JSON values)")
        return True

    def _zip_local_header(self, src: Source, info: zipfile.ZipInfo, add: Any) -> int:
        header = src.read_at(info.header_offset, 30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise Malformed(f"zip local header of {info.filename!r} missing")
        (_, _, flags, method, _, _, crc, csize, usize, nlen, elen) = struct.unpack("<4sHHHHHIIIHH", header)
        raw_name = src.read_at(info.header_offset + 30, nlen)
        local_name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        problems = []
        if local_name != info.orig_filename:
            problems.append(f"name {local_name[:60]!r} vs {info.orig_filename[:60]!r}")
        if method != info.compress_type:
            problems.append(f"method {method} vs {info.compress_type}")
        if flags != info.flag_bits:
            problems.append(f"flags 0x{flags:x} vs 0x{info.flag_bits:x}")
        if not flags & 0x8:
            for what, local, central in (
                ("crc", crc, info.CRC),
                ("compressed size", csize, info.compress_size),
                ("size", usize, info.file_size),
            ):
                if local != central and local != 0xFFFFFFFF:
                    problems.append(f"{what} {local} vs {central}")
        if problems:
            add(
                "zip-header-mismatch",
                Severity.high,
                f"local header and central directory disagree for {info.filename[:80]!r}: "
                + "; ".join(problems),
            )
        return info.header_offset + 30 + nlen + elen

    def _zip_member(self, raw: Source, info: zipfile.ZipInfo, child: str) -> Source:
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise Malformed("stored zip member whose sizes differ")
            return raw
        try:
            d = zipfile._get_decompressor(info.compress_type)  # type: ignore[attr-defined]
        except NotImplementedError as exc:
            raise Malformed(f"zip compression method {info.compress_type} not supported") from exc
        out = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - closed by the caller
        produced = consumed = 0
        try:
            pos = 0
            while pos < raw.size:
                block = raw.read_at(pos, CHUNK)
                pos += len(block)
                consumed += len(block)
                for chunk in feed(d, block):
                    produced += len(chunk)
                    self._charge(len(chunk), produced, consumed, child)
                    out.write(chunk)
            if hasattr(d, "flush"):
                tail = d.flush()
                produced += len(tail)
                out.write(tail)
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
            out.close()
            raise Malformed(f"corrupt compressed zip member ({exc})") from exc
        except BaseException:
            out.close()
            raise
        if produced != info.file_size:
            self.adder(child)(
                "zip-header-mismatch",
                Severity.high,
                f"member inflates to {produced} bytes, the central directory says {info.file_size}",
            )
        return Source(out, 0, produced)  # type: ignore[arg-type]

    @staticmethod
    def _crc(src: Source) -> int:
        crc = 0
        pos = 0
        while pos < src.size:
            block = src.read_at(pos, CHUNK * 4)
            crc = zlib.crc32(block, crc)
            pos += len(block)
        return crc

    # -- tar --------------------------------------------------------------------------------------------
    def _tar(self, src: Source, member: str, depth: int) -> str:
        add = self.adder(member)
        try:
            tf = tarfile.open(fileobj=SourceFile(src), mode="r:")  # noqa: SIM115 - closed below
        except tarfile.TarError as exc:
            raise Malformed(f"invalid tar archive ({exc})") from exc
        members: list[tarfile.TarInfo] = []
        with tf:
            while True:
                try:
                    info = tf.next()
                except tarfile.TarError as exc:
                    raise Malformed(f"corrupt tar header ({exc})") from exc
                if info is None:
                    break
                members.append(info)
                if len(members) > self.config.max_archive_members:
                    raise Malformed("tar has more members than max_archive_members")
        names = {m.name for m in members}
        legacy = names >= _LEGACY_TAR
        seen: set[str] = set()
        for info in members:
            child = f"{member}!{info.name}" if member else info.name
            if info.name in seen and not info.isdir():
                add("archive-duplicate-name", Severity.high, f"tar holds {info.name!r} more than once")
            seen.add(info.name)
            if path_traversal(info.name):
                add("archive-path-traversal", Severity.high, f"tar member name {info.name[:120]!r} escapes")
            if info.issym() or info.islnk():
                target = info.linkname
                if path_traversal(target) or ".." in Path(info.name).parent.joinpath(target).parts:
                    add("archive-link-escape", Severity.high, f"tar link {info.name!r} -> {target[:120]!r}")
                continue
            if info.ischr() or info.isblk() or info.isfifo():
                add("archive-special-file", Severity.medium, f"tar member {info.name!r} is a device or FIFO")
                continue
            if info.isdir() or not (info.isreg() or info.type not in tarfile.SUPPORTED_TYPES):
                continue  # tarfile.extractfile also reads members with unknown type flags: scan those
            if info.sparse:
                self.error(child, "sparse tar member cannot be analysed")
                continue
            view = src.window(info.offset_data, info.size)
            if legacy and info.name in ("storages", "tensors"):
                try:
                    self._torch_tar_records(view, info.name, child)
                    self.members.append(f"{child}: torch-legacy-{info.name}")
                except Malformed as exc:
                    self.error(child, str(exc))
                continue
            self.scan(view, child, depth + 1)
        return "torch-legacy-tar" if legacy else "tar"


def _find_eocd(src: Source) -> int | None:
    if src.size < 22:
        return None
    tail_len = min(src.size, 22 + 0xFFFF)
    tail = src.read_at(src.size - tail_len, tail_len)
    idx = tail.rfind(b"PK\x05\x06")
    while idx >= 0:
        if idx + 22 <= len(tail):
            comment_len = int.from_bytes(tail[idx + 20 : idx + 22], "little")
            if idx + 22 + comment_len == len(tail):
                return src.size - tail_len + idx
        idx = tail.rfind(b"PK\x05\x06", 0, idx)
    return None


def _hdf5_superblock(src: Source) -> int | None:
    """Offset of an HDF5 superblock after a user block (0, 512, 1024, 2048 … as h5py searches), or None."""
    at = 512
    while at + 8 <= src.size:
        if src.read_at(at, 8) == b"\x89HDF\r\n\x1a\n":
            return at
        at *= 2
    return None


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    return stored == computed and head[0] != 0


_TEXT_BYTES = bytes([7, 8, 9, 10, 12, 13, 27, *range(0x20, 0x7F), *range(0x80, 0x100)])


def _is_text(src: Source) -> bool:
    data = src.read_at(0, 1 << 16)
    if b"\x00" in data or len(data.translate(None, _TEXT_BYTES)) * 100 > len(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3 and len(data) == 1 << 16
    return True


def scan_source(src: Source, *, name: str, config: ScanConfig, path: Path | None = None) -> FileReport:
    """Scan a byte view (a file, a stored blob read through a seekable reader, bytes in memory)."""
    walk = _Walk(config=config, path=path if path is not None else Path(name))
    fmt = walk.scan(src, "", 0)
    issues = tuple(dict.fromkeys(walk.issues))  # both readings of a joblib file report shared findings once
    return FileReport(
        path=name,
        format=fmt,
        size=src.size,
        issues=issues,
        errors=tuple(walk.errors),
        members=tuple(walk.members),
    )


def scan_file(path: Path, config: ScanConfig) -> FileReport:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            return FileReport(str(path), "special", 0, errors=(ScanError("not a regular file"),))
        with path.open("rb") as fh:
            return scan_source(Source(fh), name=str(path), config=config, path=path)
    except OSError as exc:
        return FileReport(str(path), "unreadable", 0, errors=(ScanError(f"cannot read ({exc.strerror})"),))


__all__ = ["SourceFile", "scan_file", "scan_source"]
