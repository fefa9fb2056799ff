"""Streaming authenticated encryption: AES-256-GCM in segments, per-file key from HKDF-SHA256.

The construction follows Tink's *AES-GCM-HKDF streaming AEAD* (Hoang, Reyhanitabar, Rogaway, Vizár,
"Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015, the "STREAM" scheme;
Tink's ``AesGcmHkdfStreaming``). Only ``cryptography`` primitives are composed here; nothing is hand-rolled.

Format (all integers big-endian)::

    header   = version (1 byte, 0x01) ‖ segment_size (4 bytes) ‖ salt (32 bytes) ‖ nonce_prefix (7 bytes)
    body     = segment_0 ‖ segment_1 ‖ … ‖ segment_{n-1}
    segment  = AES-256-GCM(file_key, nonce_i, plaintext_i, aad=header)   (ciphertext ‖ 16-byte tag)
    file_key = HKDF-SHA256(ikm=DEK, salt=salt, info=associated_data, length=32)
    nonce_i  = nonce_prefix (7) ‖ i (4) ‖ last flag (1: 0x01 on the final segment, else 0x00)

Every segment but the last holds exactly ``segment_size`` plaintext bytes; the last holds 0..segment_size
bytes (an empty input is one empty final segment; an input that is an exact multiple of the segment size ends
with a *full* final segment, never an extra empty one).

What is detected, and how:

* editing any byte of a segment or its tag: GCM authentication fails for that segment;
* truncation (dropping the final segment or cutting inside one): the segment now read as final was sealed with
  last flag 0 (or is short), so it fails to authenticate;
* extension (bytes appended): the formerly final segment was sealed with last flag 1 but is now read as
  non-final;
* reordering or dropping a middle segment: the segment index is part of the nonce;
* swapping a segment in from another file (or another key, or other associated data): each file has its own
  random salt and nonce prefix, so its file key and nonces differ;
* editing the header: salt and nonce prefix change the key and nonces, and the whole header is also each
  segment's GCM associated data, so the version and segment-size fields are bound too.

Deviations from Tink: the header carries the segment size and a version byte instead of a header-length byte,
and is bound as GCM associated data of every segment; the first segment is not shortened by the header length.

Memory is constant for any stream size: two plaintext buffers and one ciphertext buffer of one segment each,
reused for the whole stream (``AESGCM.encrypt_into`` / ``decrypt_into``, no per-segment allocation).

Range reads: ``read_range`` decrypts only the segments a byte range touches. Segment *k* holds plaintext bytes
``[k*S, (k+1)*S)``, so a range ``[offset, offset+length)`` decrypts
``(offset+length-1)//S - offset//S + 1`` segments: ``ceil(length/S)`` when ``offset`` is a multiple of
``S``, and at most ``ceil(length/S) + 1`` otherwise. With the default 1 MiB segments, a 1 MiB range decrypts
1 segment when aligned and at most 2 in any case. A range read authenticates every segment it returns
(position included); a range that touches no segment (empty, or at the end) authenticates the final one,
so no answer is unauthenticated. Whole-stream properties such as truncation are checked by
:func:`decrypt_stream`, which a caller runs to verify an artifact. :class:`DecryptingReader` is a seekable
file over the plaintext built on the same reads (it authenticates the final segment when it opens, so the
size it reports is authenticated): the vault's inspectors read stored versions through it.

The zero-copy cores that the encryptor and decryptor run (``encrypt_stream_to`` / ``decrypt_stream_to``
with a buffer-lending ``SegmentSink``) are sharp and live in :mod:`bastion.crypto.hazmat`.

Over ~400 lines on purpose: one segment format, whose framing (header, nonces, final-segment flag) the
encryptor, the decryptor, range reads and the seekable reader must agree on byte for byte.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.errors import IntegrityError, InvalidInput

VERSION = 1
KEY_SIZE = 32
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
HEADER_SIZE = 1 + 4 + SALT_SIZE + NONCE_PREFIX_SIZE
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 64
MAX_SEGMENT_SIZE = 64 << 20
MAX_SEGMENTS = 1 << 32

_HEADER = struct.Struct(">BI")
_NONCE = struct.Struct(f">{NONCE_PREFIX_SIZE}sIB")
_random = os.urandom  # the salt and nonce prefix source (a test seam for the format's known-answer vector)
_OPAQUE = "encrypted stream failed to authenticate (tampered, truncated, or wrong key/associated data)"


@dataclass(frozen=True)
class StreamInfo:
    """What :func:`encrypt_stream` wrote."""

    segment_size: int
    segments: int
    plaintext_size: int
    ciphertext_size: int

    def to_dict(self) -> dict[str, int]:
        return {
            "segment_size": self.segment_size,
            "segments": self.segments,
            "plaintext_size": self.plaintext_size,
            "ciphertext_size": self.ciphertext_size,
        }


@dataclass(frozen=True)
class RangeRead:
    """The plaintext of a byte range and how many segments were decrypted to produce it."""

    data: bytes
    segments_decrypted: int


def ciphertext_size(plaintext_size: int, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The exact size of the encryption of ``plaintext_size`` bytes."""
    _check_segment_size(segment_size)
    segments = max(1, -(-plaintext_size // segment_size))
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


def _check_segment_size(segment_size: int) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise InvalidInput(f"segment_size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise InvalidInput(f"the data key must be {KEY_SIZE} bytes")


def _file_cipher(key: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    file_key = HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=bytes(associated_data)
    ).derive(bytes(key))
    return AESGCM(file_key)


def _read_full(src: BinaryIO, buf: memoryview) -> int:
    """Fill ``buf`` from ``src`` until it is full or the stream ends; return the byte count."""
    filled = 0
    size = len(buf)
    readinto = getattr(src, "readinto", None)
    while filled < size:
        if readinto is not None:
            got = readinto(buf[filled:])
            if not got:
                break
        else:
            chunk = src.read(size - filled)
            if not chunk:
                break
            got = len(chunk)
            buf[filled : filled + got] = chunk
        filled += got
    return filled


def _read_header(src: BinaryIO) -> bytes:
    buf = bytearray(HEADER_SIZE)
    got = _read_full(src, memoryview(buf))
    return bytes(buf[:got])


def _parse_header(header: bytes) -> tuple[int, bytes, bytes]:
    if len(header) != HEADER_SIZE:
        raise IntegrityError(_OPAQUE)
    version, segment_size = _HEADER.unpack_from(header, 0)
    if version != VERSION or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError(_OPAQUE)
    salt = header[_HEADER.size : _HEADER.size + SALT_SIZE]
    prefix = header[_HEADER.size + SALT_SIZE :]
    return segment_size, salt, prefix


class _FixedSink:
    """A :class:`bastion.crypto.hazmat.SegmentSink` over a plain ``write`` target: one reused buffer."""

    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._buf = bytearray(0)

    def acquire(self, size: int) -> bytearray:
        if len(self._buf) < size:
            self._buf = bytearray(size)
        return self._buf

    def commit(self, buf: bytearray, n: int) -> None:
        self._dst.write(memoryview(buf)[:n])

    def write(self, data: bytes) -> int:
        return self._dst.write(data)


def encrypt_stream(
    *,
    key: bytes,
    src: BinaryIO,
    dst: BinaryIO,
    associated_data: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> StreamInfo:
    """Encrypt ``src`` to ``dst`` under the 32-byte data key ``key``, binding ``associated_data``.

    Reads and writes in segments, so memory stays at about three segments whatever the stream size.
    """
    from bastion.crypto.hazmat import encrypt_stream_to  # the zero-copy core, behind its warning name

    return encrypt_stream_to(
        key=key, src=src, sink=_FixedSink(dst), associated_data=associated_data, segment_size=segment_size
    )


def decrypt_stream(*, key: bytes, src: BinaryIO, dst: BinaryIO, associated_data: bytes) -> int:
    """Decrypt ``src`` to ``dst``; return the number of plaintext bytes written.

    Each segment is authenticated before its plaintext is written. A failure at segment *k* (tampering,
    truncation, extension, reordering, wrong key or associated data) raises :class:`IntegrityError` after the
    plaintext of segments ``0..k-1`` was written: write to a temporary file and rename it only on success.
    """
    from bastion.crypto.hazmat import decrypt_stream_to

    return decrypt_stream_to(key=key, src=src, sink=_FixedSink(dst), associated_data=associated_data)


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only file over the plaintext of an encrypted stream (the vault's range reads).

    Every byte it returns comes from a segment that authenticated (position and last flag included); the
    final segment is authenticated when the reader is built, so :attr:`size` (and ``seek(0, SEEK_END)``) is
    authenticated too. One decrypted segment is cached, so a parser reading small pieces in order decrypts
    each segment once. ``segments_decrypted`` counts the segment decryptions made so far.
    """

    def __init__(
        self, *, key: bytes, src: BinaryIO, associated_data: bytes, close_source: bool = False
    ) -> None:
        super().__init__()
        _check_key(key)
        self._src = src
        self._close_source = close_source
        self._base = src.tell()
        self._header = _read_header(src)
        segment_size, salt, self._prefix = _parse_header(self._header)
        total_ct = src.seek(0, os.SEEK_END) - self._base
        body = total_ct - HEADER_SIZE
        seg_ct = segment_size + TAG_SIZE
        if body < TAG_SIZE:
            raise IntegrityError(_OPAQUE)
        self._nseg = -(-body // seg_ct)
        self._last_ct = body - (self._nseg - 1) * seg_ct
        if self._last_ct < TAG_SIZE or self._nseg > MAX_SEGMENTS:
            raise IntegrityError(_OPAQUE)
        self.segment_size = segment_size
        self.size = body - self._nseg * TAG_SIZE
        self.segments_decrypted = 0
        self._cipher = _file_cipher(key, salt, associated_data)
        self._ct = memoryview(bytearray(seg_ct))
        self._pt = bytearray(segment_size)
        self._cached = -1
        self._cached_len = 0
        self._pos = 0
        self._load(self._nseg - 1)  # the final segment: proves where the stream ends

    def _load(self, k: int) -> memoryview:
        if k != self._cached:
            self._cached = -1
            self._src.seek(self._base + HEADER_SIZE + k * (self.segment_size + TAG_SIZE))
            is_last = k == self._nseg - 1
            want = self._last_ct if is_last else self.segment_size + TAG_SIZE
            if _read_full(self._src, self._ct[:want]) != want:
                raise IntegrityError(_OPAQUE)
            nonce = _NONCE.pack(self._prefix, k, 1 if is_last else 0)
            try:
                self._cipher.decrypt_into(
                    nonce, self._ct[:want], self._header, memoryview(self._pt)[: want - TAG_SIZE]
                )
            except InvalidTag as exc:
                raise IntegrityError(_OPAQUE) from exc
            self.segments_decrypted += 1
            self._cached, self._cached_len = k, want - TAG_SIZE
        return memoryview(self._pt)[: self._cached_len]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed and self._close_source:
            self._src.close()
        super().close()

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out) and self._pos < self.size:
            k, lo = divmod(self._pos, self.segment_size)
            plain = self._load(k)
            n = min(len(out) - done, len(plain) - lo)
            out[done : done + n] = plain[lo : lo + n]
            done += n
            self._pos += n
        return done

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.size - self._pos)
        buf = bytearray(min(size, max(0, self.size - self._pos)))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)


def read_range(*, key: bytes, src: BinaryIO, associated_data: bytes, offset: int, length: int) -> RangeRead:
    """Decrypt plaintext bytes ``[offset, offset+length)`` by decrypting only the segments they touch.

    ``src`` must be seekable and positioned at the start of the ciphertext. A range running past the end is
    cut at the end; an ``offset`` beyond the end raises :class:`InvalidInput`. See the module docstring for
    how many segments a range touches. A range that touches no segment (empty, or at the end) still
    authenticates the final segment, so the answer (empty data, or "beyond the end") is never unauthenticated.
    """
    _check_key(key)
    if offset < 0 or length < 0:
        raise InvalidInput("offset and length must be non-negative")
    base = src.tell()
    header = _read_header(src)
    segment_size, salt, prefix = _parse_header(header)
    total_ct = src.seek(0, os.SEEK_END) - base
    body = total_ct - HEADER_SIZE
    seg_ct = segment_size + TAG_SIZE
    if body < TAG_SIZE:
        raise IntegrityError(_OPAQUE)
    nseg = -(-body // seg_ct)
    last_ct = body - (nseg - 1) * seg_ct
    if last_ct < TAG_SIZE or nseg > MAX_SEGMENTS:
        raise IntegrityError(_OPAQUE)
    plain_size = body - nseg * TAG_SIZE
    end = min(offset + length, plain_size)
    cipher = _file_cipher(key, salt, associated_data)
    if end <= offset:
        first = final = nseg - 1  # nothing in range: authenticate the final segment (the stream's end)
    else:
        first, final = offset // segment_size, (end - 1) // segment_size
    ct_buf = memoryview(bytearray(seg_ct))
    pt_buf = memoryview(bytearray(segment_size))
    result = bytearray(max(0, end - offset))
    pos = 0
    for k in range(first, final + 1):
        src.seek(base + HEADER_SIZE + k * seg_ct)
        is_last = k == nseg - 1
        want = last_ct if is_last else seg_ct
        got = _read_full(src, ct_buf[:want])
        if got != want:
            raise IntegrityError(_OPAQUE)
        nonce = _NONCE.pack(prefix, k, 1 if is_last else 0)
        plain = pt_buf[: want - TAG_SIZE]
        try:
            cipher.decrypt_into(nonce, ct_buf[:want], header, plain)
        except InvalidTag as exc:
            raise IntegrityError(_OPAQUE) from exc
        if end <= offset:
            break
        seg_start = k * segment_size
        lo = max(offset, seg_start) - seg_start
        hi = min(end, seg_start + len(plain)) - seg_start
        result[pos : pos + hi - lo] = plain[lo:hi]
        pos += hi - lo
    if offset > plain_size:
        raise InvalidInput(f"offset {offset} is beyond the end of the plaintext ({plain_size} bytes)")
    return RangeRead(data=bytes(result), segments_decrypted=final - first + 1)


__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "HEADER_SIZE",
    "TAG_SIZE",
    "DecryptingReader",
    "RangeRead",
    "StreamInfo",
    "ciphertext_size",
    "decrypt_stream",
    "encrypt_stream",
    "read_range",
]

_MOVED_TO_HAZMAT = frozenset({"SegmentSink", "decrypt_stream_to", "encrypt_stream_to"})


def __getattr__(name: str) -> Any:
    """Deprecated aliases: the zero-copy cores moved to :mod:`bastion.crypto.hazmat`."""
    if name in _MOVED_TO_HAZMAT:
        import warnings

        from bastion.crypto import hazmat

        warnings.warn(
            f"bastion.crypto.aead.{name} is deprecated: use bastion.crypto.hazmat.{name} (a sharp tool)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(hazmat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
