"""zip archives: torch zip checkpoints and TorchScript, ``.npz``, ``.keras``, ``.skops`` and plain zips.

The archive structure itself is checked (local header vs central directory, CRCs, duplicate names, traversal,
overlapping entries, bytes before the first record that ``pickle.load`` would read); every member is inflated
with bounded streaming decompression and walked. A torch zip is also opened with torch's own reader (miniz)
and refused when it sees other records or ``.pkl`` bytes than Python's ``zipfile`` (issue 19, class 5).
"""

from __future__ import annotations

import io
import itertools
import logging
import lzma
import re
import struct
import tempfile
import zipfile
import zlib
from typing import Any

from bastion.scan._allowlist import normalise_extra
from bastion.scan._decomp import Bomb, ZipLzma, feed
from bastion.scan._formats.common import loads_json, path_traversal
from bastion.scan._formats.keras import check_keras_config
from bastion.scan._formats.skops import check_skops_schema, looks_like_skops_schema
from bastion.scan._io import CHUNK, Malformed, Source, SourceFile
from bastion.scan._model import Severity
from bastion.scan._pickle import analyze_pickle
from bastion.scan.interface import Walk

_TORCH_DATA = re.compile(r"(?:[^/]*/)?data/\d+")
#: what torch.jit.load compiles and runs: TorchScript source, constants, mobile bytecode
_TS_CODE = re.compile(r"(?:[^/]*/)?(?:code/.*|\.data/ts_code/.*|constants\.pkl|bytecode\.pkl)")
#: inside allowed TorchScript, still refused: file access (aten::from_file) and ops/classes outside aten/prim
_TS_DENY = re.compile(rb"\bfrom_file\b|\bops\s*\.\s*(?!aten\b|prim\b)\w+\s*\.|\bclasses\s*\.\s*\w+\s*\.")
#: the pickles of a torch zip whose persistent ids name tensor records
_TORCH_PKL = re.compile(r"(?:[^/]*/)?(?:data|constants)\.pkl")
_log = logging.getLogger("bastion.scan")


def find_eocd(src: Source) -> int | None:
    """Offset of the end-of-central-directory record a zip reader would take (None: no reader finds one).

    ``zipfile._EndRecData``: the last 22 bytes if they are a comment-less record, else the last signature
    in the final 64 KiB + 22 bytes, whatever follows its comment (None if that record is cut short); miniz
    (torch's reader) takes the last signature with a whole record after it. Bytes before the archive are
    tolerated by both (issue 19, finding F6).
    """
    if src.size < 22:
        return None
    tail_len = min(src.size, 22 + 0xFFFF + 1)
    tail = src.read_at(src.size - tail_len, tail_len)
    if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\x00\x00":
        return src.size - 22
    idx = tail.rfind(b"PK\x05\x06")
    if idx >= 0 and idx + 22 <= len(tail):
        return src.size - tail_len + idx  # zipfile's choice
    idx = tail.rfind(b"PK\x05\x06", 0, len(tail) - 21)
    return src.size - tail_len + idx if idx >= 0 else None  # miniz's choice


def _opens_as_zip(src: Source) -> bool:
    """Whether Python's zipfile or torch's reader opens the bytes as an archive (central directory only)."""
    try:
        with zipfile.ZipFile(SourceFile(src)):
            return True
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        pass
    try:
        import torch
    except ImportError:
        return False
    try:
        torch._C.PyTorchFileReader(io.BufferedReader(SourceFile(src)))  # type: ignore[arg-type]
    except Exception:  # torch raises RuntimeError (and others) for everything it cannot read
        return False
    return True


class ZipHandler:
    name = "zip"

    def matches(self, head: bytes, src: Source) -> bool:
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return True
        return find_eocd(src) is not None and _opens_as_zip(src)

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        return scan_zip(walk, src, member, depth)


def scan_zip(walk: Walk, src: Source, member: str, depth: int) -> str:
    add = walk.adder(member)
    try:
        zf = zipfile.ZipFile(SourceFile(src))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise Malformed(f"invalid zip archive ({exc})") from exc
    infos = zf.infolist()
    if len(infos) > walk.config.max_archive_members:
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
    # TorchScript carries programs that torch.jit.load (and torch.load, which dispatches to it) compiles and
    # runs at load time, e.g. a __setstate__ calling torch.from_file: code, never judged safe by default
    ts_code = [n for n in names if _TS_CODE.fullmatch(n)]
    scripted = bool(ts_code) and any(n.endswith("data.pkl") for n in names)
    if scripted and not walk.config.unsafe_allow_torchscript:
        add(
            "torchscript-code",
            Severity.high,
            f"TorchScript archive: {len(ts_code)} code member(s) that torch.jit.load compiles and runs "
            "at load time (allow TorchScript explicitly with unsafe_allow_torchscript)",
        )
    elif scripted:
        _log.warning("unsafe: TorchScript code in %s judged by its pickles only", member or "the file")
    seen: set[str] = set()
    # the structure first: nothing is inflated from an archive whose entries overlap (issue 19, F5)
    spans: list[tuple[int, int, str]] = []
    starts: dict[int, int] = {}
    for info in infos:
        data_start = _local_header(src, info, add)
        if data_start + info.compress_size > src.size:
            raise Malformed(f"zip member {info.filename!r} runs past the end of the archive")
        starts[id(info)] = data_start
        spans.append((info.header_offset, data_start + info.compress_size, info.filename))
    spans.sort()
    overlap = False
    for (_a_start, a_end, a_name), (b_start, _, b_name) in itertools.pairwise(spans):
        if b_start < a_end:
            add("zip-overlapping-entries", Severity.high, f"zip entries {a_name!r} and {b_name!r} overlap")
            overlap = True
    if overlap:
        return fmt
    # tensor records are judged after the pickles that reference them (issue 19, F2)
    referenced: set[str] = set()
    ordered = sorted(infos, key=lambda i: bool(is_torch and _TORCH_DATA.fullmatch(i.filename)))
    outer_script, walk.torchscript = walk.torchscript, is_script
    try:
        for info in ordered:
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
            data_start = starts[id(info)]
            if info.flag_bits & 0x1:
                walk.error(child, "encrypted archive member: bastion cannot analyse encrypted archives")
                continue
            if name.endswith("/"):
                continue
            tensor = is_torch and name in referenced
            if tensor and (info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size):
                add("zip-tensor-compressed", Severity.medium, f"tensor data {name!r} is not stored raw")
                continue
            if tensor:  # raw bytes torch reads by persistent id: judged only as other readers see them
                _tensor_record(walk, src.window(data_start, info.compress_size), child, depth)
                continue
            raw = src.window(data_start, info.compress_size)
            try:
                view = _member(walk, raw, info, child)
            except Bomb as exc:
                walk.adder(child)("archive-bomb", Severity.high, str(exc))
                continue
            except Malformed as exc:
                walk.error(child, str(exc))
                continue
            try:
                if _crc(view) != info.CRC:
                    walk.adder(child)("zip-crc-mismatch", Severity.medium, f"CRC of {name!r} does not match")
                if is_keras and name == "config.json":
                    check_keras_config(view.read_at(0, view.size), walk.adder(child), what="config.json")
                    walk.note(child, "keras-config")
                elif name == "schema.json" and _skops_schema(walk, view, child):
                    fmt = "skops"
                else:
                    if scripted and name in ts_code and not name.endswith(".pkl"):
                        _ts_denied(view, walk.adder(child))
                    if is_torch and _TORCH_PKL.fullmatch(name):
                        referenced |= _storage_records(walk, view, name)
                    walk.scan(view, child, depth + 1)
            except Malformed as exc:
                walk.error(child, str(exc))
            finally:
                if view.fh is not src.fh:
                    view.fh.close()
    finally:
        walk.torchscript = outer_script
    # bytes before the first record (or before the central directory of a zip with no members): a
    # pickle there is what pickle.load, and torch.load's legacy path, would read
    first = min([s for s, _, _ in spans] + [zf.start_dir])  # type: ignore[attr-defined]
    if is_torch:
        _torch_reader_agrees(walk, src, zf, infos, add)
    if first > 0:
        walk.scan(src.window(0, first), f"{member}!<prefix>" if member else "<prefix>", depth + 1)
    return fmt


def _torch_reader_agrees(walk: Walk, src: Source, zf: zipfile.ZipFile, infos: list[Any], add: Any) -> None:
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
        if info.file_size > walk.config.max_header_bytes:
            continue
        if bytes(reader.get_record(name)) != zf.read(info):
            add(
                "zip-reader-differential",
                Severity.high,
                f"torch's zip reader and Python's zipfile read different bytes for {name[:80]!r}",
            )


def _storage_records(walk: Walk, view: Source, name: str) -> set[str]:
    """The ``data/<key>`` records a torch pickle loads by persistent id (what torch reads as raw bytes)."""
    prefix = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    try:
        res = analyze_pickle(view.reader(), config=walk.config, issues=[], member=name, torchscript=True)
    except Malformed:
        return set()  # the walk reports the pickle itself; its tensors are then judged as unknown bytes
    return {
        f"{prefix}data/{pid[2]}"
        for pid in res.persistent
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], str | int)
    }


def _tensor_record(walk: Walk, view: Source, child: str, depth: int) -> None:
    """Raw tensor bytes: scanned as a file where another loader would read them as one (npz, zip, pickle)."""
    head = view.read_at(0, 8)
    if head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")):  # np.load(npz)[name], nested zips
        walk.scan(view, child, depth + 1)
    elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        walk.replay(view, child, "pickle.load reading of tensor data", strict=False)


def _ts_denied(view: Source, add: Any) -> None:
    """Allowed TorchScript source still may not open files or call ops outside aten/prim."""
    text = view.read_at(0, view.size)
    hit = _TS_DENY.search(text)
    if hit:
        add(
            "torchscript-denied-op",
            Severity.critical,
            f"TorchScript code calls {hit.group(0).decode('latin-1')[:40]!r} (file access or a custom op)",
        )


def _skops_schema(walk: Walk, view: Source, child: str) -> bool:
    """Judge a zip's ``schema.json`` as a skops schema when it has skops' shape (else: not handled)."""
    if view.size > walk.config.max_header_bytes:
        raise Malformed(f"schema.json larger than max_header_bytes={walk.config.max_header_bytes}")
    try:
        doc = loads_json(view.read_at(0, view.size), "schema.json")
    except Malformed:
        return False
    if not looks_like_skops_schema(doc):
        return False
    nodes = check_skops_schema(doc, walk.adder(child), extra=normalise_extra(walk.config.extra_allow))
    walk.note(child, f"skops-schema ({nodes} JSON values)")
    return True


def _local_header(src: Source, info: zipfile.ZipInfo, add: Any) -> int:
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
            f"local header and central directory disagree for {info.filename[:80]!r}: " + "; ".join(problems),
        )
    return info.header_offset + 30 + nlen + elen


def _member(walk: Walk, raw: Source, info: zipfile.ZipInfo, child: str) -> Source:
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise Malformed("stored zip member whose sizes differ")
        return raw
    try:
        if info.compress_type == zipfile.ZIP_LZMA:  # zipfile's own wrapper has no output bound
            d: Any = ZipLzma()
        else:
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
                walk.charge(len(chunk), produced, consumed, child)
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
        walk.adder(child)(
            "zip-header-mismatch",
            Severity.high,
            f"member inflates to {produced} bytes, the central directory says {info.file_size}",
        )
    return Source(out, 0, produced)  # type: ignore[arg-type]


def _crc(src: Source) -> int:
    crc = 0
    pos = 0
    while pos < src.size:
        block = src.read_at(pos, CHUNK * 4)
        crc = zlib.crc32(block, crc)
        pos += len(block)
    return crc


ZIP = ZipHandler()

__all__ = ["ZIP", "ZipHandler", "find_eocd", "scan_zip"]
