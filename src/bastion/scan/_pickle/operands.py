"""Operand decoding of the pickle opcodes, exactly as CPython's unpickler reads them (``I0x1``, ``I+1`` …)."""

from __future__ import annotations

import codecs
import pickletools
import re
from typing import Any

from bastion.scan._io import Malformed, Reader
from bastion.scan._pickle.values import STR_CAP, Opaque

#: opcode byte -> (opcode name, operand kind or None)
ARG_KINDS: dict[int, tuple[str, str | None]] = {
    op.code.encode("latin-1")[0]: (op.name, op.arg.name if op.arg else None) for op in pickletools.opcodes
}
_STRTOL = re.compile(rb"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def read_arg(r: Reader, kind: str | None, offset: int) -> Any:
    """Decode the operand of kind ``kind`` (pickletools' name) exactly as CPython's unpickler reads it."""
    if kind is None:
        return None
    if kind == "uint1":
        return r.read_byte()
    if kind == "uint2":
        return int.from_bytes(r.read(2), "little")
    if kind == "int4":
        return int.from_bytes(r.read(4), "little", signed=True)
    if kind == "uint4":
        return int.from_bytes(r.read(4), "little")
    if kind == "uint8":
        return int.from_bytes(r.read(8), "little")
    if kind == "float8":
        r.skip(8)
        return 0.0
    if kind in ("long1", "long4"):
        n = r.read_byte() if kind == "long1" else int.from_bytes(r.read(4), "little", signed=True)
        if n < 0:
            raise Malformed("negative LONG length", offset)
        if n > 64:
            r.skip(n)
            return Opaque("long")
        return int.from_bytes(r.read(n), "little", signed=True)
    if kind in ("string1", "bytes1", "unicodestring1"):
        return _blob(r, r.read_byte(), kind, offset)
    if kind in ("string4", "bytes4", "unicodestring4"):
        n = int.from_bytes(r.read(4), "little", signed=(kind == "string4"))
        if n < 0:
            raise Malformed("negative string length", offset)
        return _blob(r, n, kind, offset)
    if kind in ("bytes8", "unicodestring8", "bytearray8"):
        return _blob(r, int.from_bytes(r.read(8), "little"), kind, offset)
    if kind == "stringnl":
        line = r.readline().rstrip(b"\r")
        if len(line) < 2 or line[:1] not in (b"'", b'"') or line[-1:] != line[:1]:
            raise Malformed("malformed STRING argument", offset)
        raw = codecs.escape_decode(line[1:-1])[0]
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return raw
    if kind == "stringnl_noescape":
        return r.readline().decode("utf-8", "replace")
    if kind == "stringnl_noescape_pair":
        return (r.readline().decode("utf-8", "replace"), r.readline().decode("utf-8", "replace"))
    if kind == "unicodestringnl":
        return r.readline().decode("raw-unicode-escape")
    if kind in ("decimalnl_short", "decimalnl_long"):
        # exactly CPython's load_int / load_long: int(text, 0) accepts 0x1, +1, 1_0, spaces
        line = r.readline()
        if kind == "decimalnl_short" and line in (b"00", b"01"):
            return line == b"01"
        if kind == "decimalnl_long" and line.endswith(b"L"):
            line = line[:-1]
        m = _STRTOL.fullmatch(line)
        if kind == "decimalnl_short" and m:  # C's strtol first (it reads 010 as octal)
            value = (
                int(m.group(2), 0)
                if not m.group(2).startswith(b"0") or len(m.group(2)) == 1
                else (int(m.group(2), 16) if m.group(2)[1:2] in (b"x", b"X") else int(m.group(2), 8))
            )
            if value < 1 << 63:
                return -value if m.group(1) == b"-" else value
        try:
            return int(line, 0)
        except ValueError as exc:
            if "digits" in str(exc):  # longer than CPython's int-string limit: CPython refuses too
                raise Malformed("INT/LONG literal too long", offset) from exc
            raise Malformed("malformed INT/LONG argument", offset) from exc
    if kind == "floatnl":
        line = r.readline().strip()
        try:
            return float(line)
        except ValueError as exc:
            raise Malformed("malformed FLOAT argument", offset) from exc
    raise Malformed(f"unknown argument kind {kind}", offset)


def _blob(r: Reader, n: int, kind: str, offset: int) -> Any:
    if n > r.remaining():
        raise Malformed(f"truncated: {n}-byte operand at offset {offset}", offset)
    if n > STR_CAP:
        r.skip(n)
        return Opaque("str" if kind.startswith("unicode") else "bytes")
    data = r.read(n)
    if kind.startswith("unicode"):
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise Malformed("invalid UTF-8 in string operand", offset) from exc
    if kind == "string1" or kind == "string4":
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            return data
    return data


# -- main loop --------------------------------------------------------------------------------------

__all__ = ["ARG_KINDS", "read_arg"]
