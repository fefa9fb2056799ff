"""GGUF: bounded key-value walk; chat templates (Jinja, rendered by some runtimes) judged for escapes
(:mod:`.jinja`; a screen only: runtimes must render templates in Jinja's sandbox)."""

from __future__ import annotations

from typing import Any

from bastion.scan._formats.jinja import template_risk
from bastion.scan._io import Malformed, Source
from bastion.scan._model import ScanConfig, Severity
from bastion.scan.interface import AddIssue, Walk

_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def check_gguf(src: Source, config: ScanConfig, add: AddIssue) -> None:
    r = src.reader()
    if r.read(4) != b"GGUF":
        raise Malformed("not a GGUF file")
    version = int.from_bytes(r.read(4), "little")
    if version not in (2, 3):
        raise Malformed(f"unsupported GGUF version {version}")
    n_tensors = int.from_bytes(r.read(8), "little")
    n_kv = int.from_bytes(r.read(8), "little")
    if n_tensors > config.max_gguf_items or n_kv > config.max_gguf_items:
        raise Malformed("GGUF tensor or key-value count out of bounds")

    def string() -> str:
        n = int.from_bytes(r.read(8), "little")
        if n > config.max_gguf_string:
            raise Malformed(f"GGUF string of {n} bytes exceeds the bound")
        return r.read(n).decode("utf-8", "replace")

    def value(kind: int, depth: int) -> Any:
        if kind in _GGUF_SCALARS:
            raw = r.read(_GGUF_SCALARS[kind])
            return int.from_bytes(raw, "little") if kind in (4, 5, 10, 11) else None
        if kind == _GGUF_STRING:
            return string()
        if kind == _GGUF_ARRAY and depth == 0:
            inner = int.from_bytes(r.read(4), "little")
            count = int.from_bytes(r.read(8), "little")
            if count > config.max_gguf_items * 16:
                raise Malformed("GGUF array length out of bounds")
            if inner in _GGUF_SCALARS:
                r.skip(count * _GGUF_SCALARS[inner])
            else:
                for _ in range(count):
                    value(inner, depth + 1)
            return None
        raise Malformed(f"GGUF value type {kind} not understood")

    alignment = 32
    for _ in range(n_kv):
        key = string()
        kind = int.from_bytes(r.read(4), "little")
        val = value(kind, 0)
        if key == "general.alignment" and isinstance(val, int):
            if val <= 0 or val & (val - 1) or val > 1 << 20:
                raise Malformed("GGUF alignment is not a small power of two")
            alignment = val
        if "chat_template" in key and isinstance(val, str):
            risk = template_risk(val)
            if risk is not None:
                add("gguf-template-injection", Severity.high, f"chat template {key} {risk}")
    ends: list[int] = []
    for _ in range(n_tensors):
        string()
        n_dims = int.from_bytes(r.read(4), "little")
        if n_dims > 8:
            raise Malformed("GGUF tensor with more than 8 dimensions")
        r.skip(8 * n_dims)
        ggml_type = int.from_bytes(r.read(4), "little")
        if ggml_type > 64:
            raise Malformed(f"GGUF tensor type {ggml_type} unknown")
        offset = int.from_bytes(r.read(8), "little")
        if offset % alignment:
            raise Malformed("GGUF tensor offset is not aligned")
        ends.append(offset)
    data_start = -(-r.pos // alignment) * alignment
    if any(data_start + off > src.size for off in ends):
        raise Malformed("GGUF tensor offset points past the end of the file")


class GgufHandler:
    name = "gguf"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:4] == b"GGUF"

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        check_gguf(src, walk.config, walk.adder(member))
        return "gguf"


GGUF = GgufHandler()

__all__ = ["GGUF", "GgufHandler", "check_gguf"]
