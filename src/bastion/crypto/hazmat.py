"""Sharp tools: the streaming AEAD's zero-copy cores (cryptography's ``hazmat`` habit).

:func:`encrypt_stream_to` and :func:`decrypt_stream_to` are what :func:`bastion.crypto.aead.encrypt_stream`
and :func:`~bastion.crypto.aead.decrypt_stream` run, with the output handed to a :class:`SegmentSink` that
lends its own buffers instead of a file. Same format, same checks; what the caller takes on:

* the sink owns each buffer from ``commit`` until it lends it again: reusing or exposing it earlier corrupts
  or leaks the stream;
* ``decrypt_stream_to`` commits each segment as soon as *that segment* authenticated: the stream as a whole
  (truncation, extension) is authenticated only when the call returns, so a sink must keep what it received
  private and discard it when the call raises;
* nothing here writes atomically or cleans up: that is the caller's job (the vault's ``HashingSink`` and
  pull streamer do it).

Use :mod:`bastion.crypto.aead` unless a profile shows the copy matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag

from bastion.crypto import aead
from bastion.crypto.aead import (
    _HEADER,
    _NONCE,
    _OPAQUE,
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    MAX_SEGMENTS,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    VERSION,
    StreamInfo,
    _check_key,
    _check_segment_size,
    _file_cipher,
    _parse_header,
    _read_full,
    _read_header,
)
from bastion.errors import IntegrityError, InvalidInput


class SegmentSink(Protocol):
    """Where the ``*_stream_to`` functions put each segment, without an intermediate copy.

    ``acquire(size)`` returns a writable buffer of at least ``size`` bytes that the caller fills; ``commit``
    hands over its first ``n`` bytes (the sink owns the buffer until it gives it back through a later
    ``acquire``). ``write`` takes small extra bytes (the stream header) by copy.
    """

    def acquire(self, size: int) -> bytearray: ...

    def commit(self, buf: bytearray, n: int) -> None: ...

    def write(self, data: bytes) -> int: ...


def encrypt_stream_to(
    *,
    key: bytes,
    src: BinaryIO,
    sink: SegmentSink,
    associated_data: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> StreamInfo:
    """:func:`~bastion.crypto.aead.encrypt_stream` sealing each segment straight into a buffer ``sink``
    lends (same format). A pipelined sink (hash and write on another thread, a pool of buffers) then needs
    no copy per segment."""
    _check_key(key)
    _check_segment_size(segment_size)
    salt = aead._random(SALT_SIZE)  # looked up on the module: the format's test seam
    prefix = aead._random(NONCE_PREFIX_SIZE)
    header = _HEADER.pack(VERSION, segment_size) + salt + prefix
    cipher = _file_cipher(key, salt, associated_data)
    sink.write(header)

    plain_total = 0
    written = HEADER_SIZE
    index = 0
    for index, seg, last in _segments(src, segment_size):
        if index >= MAX_SEGMENTS:
            raise InvalidInput("stream too long for this segment size")
        n = len(seg)
        nonce = _NONCE.pack(prefix, index, 1 if last else 0)
        out = sink.acquire(n + TAG_SIZE)
        cipher.encrypt_into(nonce, seg, header, memoryview(out)[: n + TAG_SIZE])
        sink.commit(out, n + TAG_SIZE)
        plain_total += n
        written += n + TAG_SIZE
    return StreamInfo(
        segment_size=segment_size, segments=index + 1, plaintext_size=plain_total, ciphertext_size=written
    )


def decrypt_stream_to(*, key: bytes, src: BinaryIO, sink: SegmentSink, associated_data: bytes) -> int:
    """:func:`~bastion.crypto.aead.decrypt_stream` opening each segment straight into a buffer ``sink``
    lends. Same checks and the same guarantee: a segment is committed to ``sink`` only once it
    authenticated; the stream as a whole (truncation, extension) only when this returns."""
    _check_key(key)
    header = _read_header(src)
    segment_size, salt, prefix = _parse_header(header)
    cipher = _file_cipher(key, salt, associated_data)
    total = 0
    for index, seg, last in _segments(src, segment_size + TAG_SIZE):
        if len(seg) < TAG_SIZE or index >= MAX_SEGMENTS:
            raise IntegrityError(_OPAQUE)
        nonce = _NONCE.pack(prefix, index, 1 if last else 0)
        size = len(seg) - TAG_SIZE
        out = sink.acquire(size)
        try:
            cipher.decrypt_into(nonce, seg, header, memoryview(out)[:size])
        except InvalidTag as exc:
            raise IntegrityError(_OPAQUE) from exc
        sink.commit(out, size)
        total += size
    return total


def _segments(src: BinaryIO, size: int) -> Iterator[tuple[int, memoryview, bool]]:
    """``(index, piece, last)`` for each ``size``-byte piece of ``src`` (the last one shorter or full, never
    an extra empty one after a full piece); reading one piece ahead tells which is last. Two buffers, reused:
    a piece is valid until the next one is asked for."""
    cur = memoryview(bytearray(size))
    nxt = memoryview(bytearray(size))
    n = _read_full(src, cur)
    index = 0
    while True:
        m = _read_full(src, nxt) if n == size else 0
        yield index, cur[:n], m == 0
        if m == 0:
            return
        cur, nxt, n = nxt, cur, m
        index += 1


__all__ = ["SegmentSink", "decrypt_stream_to", "encrypt_stream_to"]
