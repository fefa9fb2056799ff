"""The byte format between the HE client and the server: a small, strictly parsed envelope.

``MAGIC (4 bytes) | header length (u32 BE) | header JSON | n × (length u64 BE | ciphertext bytes)``

The header says the layout (``packed``: ``features`` ciphertexts per batch, each holding one feature of up to
``slots`` samples; ``single``: one ciphertext per sample, TenSEAL's tutorial pattern), the batch sizes and the
width of each ciphertext group. Anything that does not parse exactly is :class:`InvalidInput`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidInput

MAGIC_REQUEST = b"BHEQ"
MAGIC_RESPONSE = b"BHER"
LAYOUTS = ("packed", "single")
MAX_HEADER = 64 * 1024
MAX_ITEMS = 1 << 16
MAX_ENVELOPE = 2 << 30


@dataclass(frozen=True)
class Envelope:
    """Packed: ``len(batches)`` groups of ``width`` ciphertexts. Single: one ciphertext of length ``width``
    per sample."""

    layout: str
    batches: tuple[int, ...]
    width: int
    items: tuple[bytes, ...]

    def groups(self) -> list[tuple[bytes, ...]]:
        return [self.items[i : i + self.width] for i in range(0, len(self.items), self.width)]


def pack(magic: bytes, env: Envelope) -> bytes:
    header = json.dumps(
        {"layout": env.layout, "batches": list(env.batches), "width": env.width, "count": len(env.items)},
        separators=(",", ":"),
    ).encode()
    parts = [magic, struct.pack(">I", len(header)), header]
    for item in env.items:
        parts.append(struct.pack(">Q", len(item)))
        parts.append(item)
    return b"".join(parts)


def unpack(magic: bytes, data: bytes) -> Envelope:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput("ciphertext payload must be bytes")
    buf = memoryview(data)
    if len(buf) > MAX_ENVELOPE:
        raise InvalidInput("ciphertext payload too large")
    if len(buf) < 8 or bytes(buf[:4]) != magic:
        raise InvalidInput("not a bastion HE payload")
    (hlen,) = struct.unpack(">I", buf[4:8])
    if hlen > MAX_HEADER or 8 + hlen > len(buf):
        raise InvalidInput("malformed HE payload header")
    try:
        header: Any = json.loads(bytes(buf[8 : 8 + hlen]))
        layout = header["layout"]
        batches = tuple(int(b) for b in header["batches"])
        width = int(header["width"])
        count = int(header["count"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("malformed HE payload header") from exc
    if layout not in LAYOUTS or width < 1 or not 0 < count <= MAX_ITEMS or any(b < 1 for b in batches):
        raise InvalidInput("malformed HE payload header")
    expected = len(batches) * width if layout == "packed" else sum(batches)
    if count != expected:
        raise InvalidInput("HE payload item count does not match its header")
    items = []
    pos = 8 + hlen
    for _ in range(count):
        if pos + 8 > len(buf):
            raise InvalidInput("truncated HE payload")
        (n,) = struct.unpack(">Q", buf[pos : pos + 8])
        pos += 8
        if n == 0 or pos + n > len(buf):
            raise InvalidInput("truncated HE payload")
        items.append(bytes(buf[pos : pos + n]))
        pos += n
    if pos != len(buf):
        raise InvalidInput("trailing bytes after HE payload")
    return Envelope(layout=layout, batches=batches, width=width, items=tuple(items))
