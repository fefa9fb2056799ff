"""safetensors: 8-byte header length, JSON header, contiguous tensor data (no code route; layout checked)."""

from __future__ import annotations

from typing import Any

from bastion.scan._formats.common import loads_json
from bastion.scan._io import Malformed, Source
from bastion.scan._model import ScanConfig
from bastion.scan.interface import Walk

SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8


def check_safetensors(src: Source, config: ScanConfig) -> dict[str, Any]:
    """Validate a safetensors header and its layout; returns the parsed header."""
    n = int.from_bytes(src.read_at(0, 8), "little")
    if n > config.max_header_bytes:
        raise Malformed(f"safetensors header of {n} bytes exceeds the {config.max_header_bytes}-byte cap")
    if 8 + n > src.size:
        raise Malformed("safetensors header runs past the end of the file")
    header = loads_json(src.read_at(8, n), "safetensors header")
    if not isinstance(header, dict):
        raise Malformed("safetensors header is not a JSON object")
    data_size = src.size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                raise Malformed("safetensors __metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise Malformed(f"safetensors entry {name[:60]!r} has an unexpected shape")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPE_BITS:
            raise Malformed(f"safetensors entry {name[:60]!r} has unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Malformed(f"safetensors entry {name[:60]!r} has an invalid shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise Malformed(f"safetensors entry {name[:60]!r} has invalid data_offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise Malformed(f"safetensors entry {name[:60]!r} points outside the data")
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * SAFETENSORS_DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise Malformed(f"safetensors entry {name[:60]!r}: shape x dtype does not match its byte span")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            kind = "overlaps another" if begin < cursor else "leaves a gap before it"
            raise Malformed(f"safetensors entry {name[:60]!r} {kind} (offsets not contiguous)")
        cursor = end
    if cursor != data_size:
        raise Malformed("safetensors data section does not end where the last tensor ends")
    return header


class SafetensorsHandler:
    name = "safetensors"

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_safetensors(head, src.size)

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        check_safetensors(src, walk.config)
        return "safetensors"


SAFETENSORS = SafetensorsHandler()

__all__ = ["SAFETENSORS", "SafetensorsHandler", "check_safetensors", "looks_like_safetensors"]
