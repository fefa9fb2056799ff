"""NumPy ``.npy``: the header is a Python literal (``ast.literal_eval``); object arrays are pickles.

(``.npz`` is a zip of ``.npy`` members: the zip handler walks it and each member comes back here.)
"""

from __future__ import annotations

import ast
import struct
from typing import Any

from bastion.scan._io import Malformed, Source
from bastion.scan._model import ScanConfig
from bastion.scan._pickle import analyze_pickle
from bastion.scan.interface import Walk


def parse_npy_header(src: Source, config: ScanConfig) -> tuple[Any, tuple[int, ...], int]:
    """Return (numpy dtype, shape, data offset) of a .npy stream; never executes anything."""
    import numpy as np

    head = src.read_at(0, 12)
    if head[:6] != b"\x93NUMPY" or len(head) < 10:
        raise Malformed("not a .npy file")
    major = head[6]
    if major == 1:
        hlen, start = struct.unpack("<H", head[8:10])[0], 10
    elif major in (2, 3):
        hlen, start = struct.unpack("<I", head[8:12])[0], 12
    else:
        raise Malformed(f"unsupported .npy version {major}")
    if hlen > min(config.max_header_bytes, 1 << 20) or start + hlen > src.size:
        raise Malformed(".npy header length out of bounds")
    text = src.read_at(start, hlen).decode("latin-1" if major < 3 else "utf-8", "replace")
    try:
        meta = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        raise Malformed(".npy header is not a literal dict") from exc
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise Malformed(".npy header has unexpected keys")
    shape = meta["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise Malformed(".npy shape is invalid")
    try:
        dtype = np.lib.format.descr_to_dtype(meta["descr"])
    except Exception as exc:
        raise Malformed(".npy dtype descriptor is invalid") from exc
    return dtype, shape, start + hlen


class NpyHandler:
    name = "npy"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:6] == b"\x93NUMPY"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        dtype, shape, offset = parse_npy_header(src, walk.config)
        if dtype.hasobject:
            analyze_pickle(src.reader(offset), config=walk.config, issues=walk.issues, member=member)
            return "npy-object"
        count = 1
        for d in shape:
            count *= d
        if offset + count * dtype.itemsize > src.size:
            raise Malformed(".npy data is shorter than its header says")
        return "npy"


NPY = NpyHandler()

__all__ = ["NPY", "NpyHandler", "parse_npy_header"]
