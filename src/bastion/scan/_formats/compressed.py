"""Compressed streams (gzip, zlib, bz2, xz, lzma: what joblib writes): bounded decompression, then walk."""

from __future__ import annotations

from bastion.scan._decomp import decompress, detect
from bastion.scan._io import Malformed, Source
from bastion.scan.interface import Walk


class CompressedHandler:
    name = "compressed"

    def matches(self, head: bytes, src: Source) -> bool:
        return detect(head) is not None

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


class Lz4Handler:
    """joblib's ``compress="lz4"``: recognised to be refused (exit 2), never taken for another format."""

    name = "lz4"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:4] == b"\x04\x22\x4d\x18"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        raise Malformed('lz4-compressed streams (joblib compress="lz4") are not supported')


COMPRESSED = CompressedHandler()
LZ4 = Lz4Handler()

__all__ = ["COMPRESSED", "LZ4", "CompressedHandler", "Lz4Handler"]
