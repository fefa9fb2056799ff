"""Bounded, seekable byte views and a buffered sequential reader over them.

Every format parser reads through a :class:`Source` (a window of a real file, of a stored archive member, or
of a spooled decompressed stream), so nothing is read into memory whole.
"""

from __future__ import annotations

import io
import tempfile
from typing import Any, BinaryIO

CHUNK = 1 << 20


class Malformed(Exception):
    """The bytes cannot be analysed (truncated, inconsistent, beyond a bound)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class BoundExceeded(Malformed):
    """A configured bound (nesting, size, count) was exceeded: never mistaken for another format."""


class Source:
    """A read-only window ``[start, start + size)`` of a seekable binary file (handles may be shared)."""

    def __init__(self, fh: BinaryIO, start: int = 0, size: int | None = None) -> None:
        if size is None:
            fh.seek(0, io.SEEK_END)
            size = fh.tell() - start
        self.fh = fh
        self.start = start
        self.size = max(0, size)

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        self.fh.seek(self.start + offset)
        return self.fh.read(n)

    def window(self, offset: int, size: int) -> Source:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise Malformed(f"range {offset}+{size} outside a {self.size}-byte view", offset)
        return Source(self.fh, self.start + offset, size)

    def reader(self, offset: int = 0) -> Reader:
        return Reader(self, offset)

    def spool(self, offset: int = 0, size: int | None = None) -> Source:
        """Copy a range into a private temporary file (used where a library wants its own handle)."""
        size = self.size - offset if size is None else size
        tmp = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - owned by the returned view
        pos = offset
        while pos < offset + size:
            block = self.read_at(pos, min(CHUNK * 8, offset + size - pos))
            if not block:
                break
            tmp.write(block)
            pos += len(block)
        return Source(tmp, 0, pos - offset)  # type: ignore[arg-type]


class Reader:
    """Sequential buffered reader over a :class:`Source`; raises :class:`Malformed` on truncation."""

    __slots__ = ("_base", "_bpos", "_buf", "src")

    def __init__(self, src: Source, offset: int = 0) -> None:
        self.src = src
        self._buf = b""
        self._bpos = 0
        self._base = offset

    @property
    def pos(self) -> int:
        return self._base + self._bpos

    def remaining(self) -> int:
        return self.src.size - self.pos

    def _refill(self, want: int) -> None:
        rest = self._buf[self._bpos :]
        start = self._base + self._bpos + len(rest)
        block = self.src.read_at(start, max(CHUNK, want - len(rest)))
        self._base = self._base + self._bpos
        self._buf = rest + block
        self._bpos = 0

    def read(self, n: int) -> bytes:
        p = self._bpos
        e = p + n
        if e <= len(self._buf):
            self._bpos = e
            return self._buf[p:e]
        if n > self.remaining():
            raise Malformed(f"truncated: needed {n} bytes at offset {self.pos}", self.pos)
        self._refill(n)
        out = self._buf[:n]
        self._bpos = n
        return out

    def read_byte(self) -> int:
        p = self._bpos
        if p < len(self._buf):
            self._bpos = p + 1
            return self._buf[p]
        return self.read(1)[0]

    def peek(self, n: int) -> bytes:
        if self._bpos + n > len(self._buf):
            self._refill(n)
        return self._buf[self._bpos : self._bpos + n]

    def skip(self, n: int) -> None:
        if n < 0 or n > self.remaining():
            raise Malformed(f"truncated: cannot skip {n} bytes at offset {self.pos}", self.pos)
        if self._bpos + n <= len(self._buf):
            self._bpos += n
            return
        self._base = self.pos + n
        self._buf = b""
        self._bpos = 0

    def readline(self, limit: int = 1 << 16) -> bytes:
        while True:
            idx = self._buf.find(b"\n", self._bpos)
            if idx >= 0:
                line = self._buf[self._bpos : idx]
                self._bpos = idx + 1
                return line
            have = len(self._buf) - self._bpos
            if have > limit:
                raise Malformed(f"line longer than {limit} bytes at offset {self.pos}", self.pos)
            if self.remaining() <= have:
                raise Malformed(f"truncated: unterminated line at offset {self.pos}", self.pos)
            self._refill(have + CHUNK)


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


__all__ = ["CHUNK", "BoundExceeded", "Malformed", "Reader", "Source", "SourceFile"]
