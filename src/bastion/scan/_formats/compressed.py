"""Compressed streams (gzip, zlib, bz2, xz, lzma: what joblib writes): bounded decompression, then walk."""

from __future__ import annotations

import zlib

from bastion.scan._decomp import decompress, detect
from bastion.scan._io import Malformed, Source
from bastion.scan.interface import Walk


class CompressedHandler:
    name = "compressed"

    def matches(self, head: bytes, src: Source) -> bool:
        kind = detect(head)
        return kind is not None and (kind != "zlib" or _zlib_opens(head))

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        kind = detect(src.read_at(0, 16))
        if kind is None:
            raise Malformed("not a compressed stream")
        what = member or kind

        def charge(n: int, produced: int, consumed: int) -> None:
            walk.charge(n, produced, consumed, what)

        def note(message: str) -> None:
            walk.note(member, message)

        inner = decompress(src, kind, charge=charge, note=note)
        try:
            fmt = walk.scan(inner, f"{member}!<{kind}>" if member else f"<{kind}>", depth + 1)
        finally:
            inner.fh.close()
        return f"{kind}:{fmt}"


def _zlib_opens(head: bytes) -> bool:
    """Whether zlib accepts the stream's first bytes. The zlib "magic" is only two bytes (``0x78`` and a
    checksum), which other formats hit by chance: a safetensors file whose header is 376 bytes long starts
    ``78 01 00 …``, a stored block with LEN 0 and NLEN 0, which zlib (and so joblib) refuses at once. A stream
    zlib refuses cannot hand joblib a pickle, so it is left to the other handlers."""
    try:
        zlib.decompressobj().decompress(head, 1)
    except zlib.error:
        return False
    return True


class JoblibCompatHandler:
    """joblib's old "Z-file" (``ZF``, a hex length, a zlib stream of a pickle): ``joblib.load`` reads it.

    Read as ``joblib.numpy_pickle_compat.read_zfile`` reads it, decompressed with the same bounds as every
    stream, and the result judged as the pickle ``ZipNumpyUnpickler`` loads (issue 19, finding F4).
    """

    name = "joblib-compat"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:2] == b"ZF"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        from bastion.scan._formats.pickle import PICKLE

        header = src.read_at(0, 2 + _ZF_MAX_LEN)
        try:
            int(header[2:], 16)  # joblib's own parse: a file it cannot parse, it does not load
        except ValueError as exc:
            raise Malformed("joblib compat file with an invalid length field") from exc
        start = len(header) + 1 if src.read_at(len(header), 1) == b" " else len(header)
        what = member or "joblib-compat"

        def charge(n: int, produced: int, consumed: int) -> None:
            walk.charge(n, produced, consumed, what)

        inner = decompress(src.window(start, src.size - start), "zlib", charge=charge)
        try:
            child = f"{member}!<zlib>" if member else "<zlib>"
            fmt = PICKLE.scan(walk, inner, child, depth + 1)  # ZipNumpyUnpickler reads it as a pickle
        finally:
            inner.fh.close()
        return f"joblib-compat:{fmt}"


#: joblib's ``_MAX_LEN``: ``len(hex(2**64))``
_ZF_MAX_LEN = 19


class Lz4Handler:
    """joblib's ``compress="lz4"``: recognised to be refused (exit 2), never taken for another format."""

    name = "lz4"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:4] == b"\x04\x22\x4d\x18"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        raise Malformed('lz4-compressed streams (joblib compress="lz4") are not supported')


COMPRESSED = CompressedHandler()
JOBLIB_COMPAT = JoblibCompatHandler()
LZ4 = Lz4Handler()

__all__ = ["COMPRESSED", "JOBLIB_COMPAT", "LZ4", "CompressedHandler", "JoblibCompatHandler", "Lz4Handler"]
