"""Text and JSON: the last reading; JSON is judged as a Keras config (a bare ``config.json`` is one)."""

from __future__ import annotations

from bastion.scan._formats.keras import check_keras_config
from bastion.scan._io import Malformed, Source
from bastion.scan.interface import Walk

_TEXT_BYTES = bytes([7, 8, 9, 10, 12, 13, 27, *range(0x20, 0x7F), *range(0x80, 0x100)])


def is_text(src: Source) -> bool:
    """UTF-8 text without NULs and with (almost) no control bytes, judged on the first 64 KiB."""
    data = src.read_at(0, 1 << 16)
    if b"\x00" in data or len(data.translate(None, _TEXT_BYTES)) * 100 > len(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3 and len(data) == 1 << 16
    return True


def scan_text(walk: Walk, src: Source, member: str) -> str:
    first = src.read_at(0, 64).removeprefix(b"\xef\xbb\xbf").lstrip()  # json.loads accepts a BOM
    if first[:1] in (b"{", b"[") and src.size <= walk.config.max_header_bytes:
        try:
            check_keras_config(src.read_at(0, src.size), walk.adder(member), what="JSON")
            return "json"
        except Malformed:
            return "text"
    return "text"


class TextHandler:
    name = "text"

    def matches(self, head: bytes, src: Source) -> bool:
        return is_text(src)

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        return scan_text(walk, src, member)


TEXT = TextHandler()

__all__ = ["TEXT", "TextHandler", "is_text", "scan_text"]
