"""Bounded streaming decompression shared by the scanner and ``safe_load`` (the same bytes for both).

joblib reads a compressed file as a sequence of streams of the same kind (after one ends it starts a new
decompressor on the remaining bytes), so this does too; every stream counts against one budget of output
bytes, one output/input ratio and one deadline (issue 19, root cause 7: a decompressor that grows without
bound).
"""

from __future__ import annotations

import bz2
import lzma
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from bastion.scan._io import CHUNK, Malformed, Source

KINDS = ("gzip", "zlib", "bz2", "xz", "lzma")


class Bomb(Exception):
    """Decompression exceeded a bound (size, ratio or time)."""


def detect(head: bytes) -> str | None:
    """The compression joblib would detect from a file's first bytes (None: not compressed)."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"\x5d\x00\x00":
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def _new(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)


class ZipLzma:
    """A zip member compressed with LZMA (method 14), read as ``zipfile`` reads it, with an output bound.

    The member is a 2-byte version, a 2-byte properties size, the LZMA1 properties, then a raw stream;
    ``zipfile.LZMADecompressor`` decompresses it without ``max_length`` (issue 19, finding F5).
    """

    def __init__(self) -> None:
        self._head = b""
        self._d: lzma.LZMADecompressor | None = None

    @property
    def eof(self) -> bool:
        return self._d is not None and self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._d is None or self._d.needs_input

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data if self._d is not None else b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            psize = int.from_bytes(self._head[2:4], "little")
            if len(self._head) < 4 + psize:
                return b""
            props = self._head[4 : 4 + psize]
            filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
            self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
            data, self._head = self._head[4 + psize :], b""
        return self._d.decompress(data, max_length)


def feed(d: Any, data: bytes) -> Iterator[bytes]:
    """Decompress ``data`` in bounded pieces (so a bomb is caught after at most CHUNK bytes more)."""
    if hasattr(d, "unconsumed_tail"):  # zlib
        yield d.decompress(data, CHUNK)
        while d.unconsumed_tail and not d.eof:
            yield d.decompress(d.unconsumed_tail, CHUNK)
    elif isinstance(d, bz2.BZ2Decompressor | lzma.LZMADecompressor | ZipLzma):
        yield d.decompress(data, CHUNK)
        while not d.eof and not d.needs_input:
            yield d.decompress(b"", CHUNK)
    else:  # a decompressor without an output bound is never run
        raise Malformed(f"no bounded decompressor for {type(d).__name__}")


def decompress(
    src: Source,
    kind: str,
    *,
    charge: Callable[[int, int, int], None],
    note: Callable[[str], None] = lambda _msg: None,
    deadline: float | None = None,
) -> Source:
    """Decompress all of ``src`` (stream after stream of ``kind``) into a private spooled file.

    ``charge(n, produced, consumed)`` is called for every piece and raises :class:`Bomb` to stop.
    """
    out = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - owned by the returned view
    d = _new(kind)
    consumed = produced = pos = 0
    started = False
    try:
        while pos < src.size:
            if deadline is not None and time.monotonic() > deadline:
                raise Bomb(f"{kind}: decompression took longer than the time bound")
            block = src.read_at(pos, CHUNK)
            pos += len(block)
            consumed += len(block)
            try:
                for chunk in feed(d, block):
                    produced += len(chunk)
                    charge(len(chunk), produced, consumed)
                    out.write(chunk)
            except (zlib.error, OSError, EOFError, lzma.LZMAError):
                if not started:
                    raise
                note(f"trailing bytes after the {kind} stream are not a {kind} stream")
                break
            if d.eof:
                started = True
                rest_at = pos - len(d.unused_data)
                if rest_at >= src.size:
                    break
                d = _new(kind)  # what joblib's reader does with the bytes after a stream
                pos = rest_at
        else:
            if not d.eof and not started:
                raise Malformed(f"truncated {kind} stream")
        if not started and not d.eof:
            raise Malformed(f"truncated {kind} stream")
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        out.close()
        raise Malformed(f"corrupt {kind} stream ({exc})") from exc
    except BaseException:
        out.close()
        raise
    return Source(out, 0, produced)  # type: ignore[arg-type]


__all__ = ["KINDS", "Bomb", "ZipLzma", "decompress", "detect", "feed"]
