"""Streaming AEAD: round trips, range reads, and every tampering the format promises to detect."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.crypto.aead import (
    HEADER_SIZE,
    TAG_SIZE,
    DecryptingReader,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
    read_range,
)
from bastion.errors import IntegrityError, InvalidInput

KEY = bytes(range(32))
AD = b"model-a\x00v3\x00sha256:abcd"
SEG = 64


def seal(data: bytes, *, key: bytes = KEY, ad: bytes = AD, segment_size: int = SEG) -> bytes:
    out = io.BytesIO()
    info = encrypt_stream(
        key=key, src=io.BytesIO(data), dst=out, associated_data=ad, segment_size=segment_size
    )
    ct = out.getvalue()
    assert info.ciphertext_size == len(ct) == ciphertext_size(len(data), segment_size=segment_size)
    assert info.plaintext_size == len(data)
    return ct


def open_(ct: bytes, *, key: bytes = KEY, ad: bytes = AD) -> bytes:
    out = io.BytesIO()
    n = decrypt_stream(key=key, src=io.BytesIO(ct), dst=out, associated_data=ad)
    assert n == len(out.getvalue())
    return out.getvalue()


def segments(ct: bytes, segment_size: int = SEG) -> list[bytes]:
    body = ct[HEADER_SIZE:]
    step = segment_size + TAG_SIZE
    return [body[i : i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG, 5 * SEG + 7])
def test_round_trip_edges(size: int) -> None:
    data = os.urandom(size)
    ct = seal(data)
    assert open_(ct) == data
    # an exact multiple of the segment size ends with a full final segment, never an empty extra one
    assert len(segments(ct)) == max(1, -(-size // SEG))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=12 * SEG), seg=st.sampled_from([64, 100, 256]))
def test_round_trip_property(data: bytes, seg: int) -> None:
    assert open_(seal(data, segment_size=seg)) == data


def test_fresh_salt_and_prefix_each_time() -> None:
    data = b"x" * 200
    assert seal(data) != seal(data)


def test_chunked_source_without_readinto() -> None:
    class Dribble:
        """A source that returns at most 7 bytes per read and has no readinto."""

        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._buf.read(min(n, 7) if n >= 0 else 7)

    data = os.urandom(5 * SEG + 3)
    out = io.BytesIO()
    encrypt_stream(key=KEY, src=Dribble(data), dst=out, associated_data=AD, segment_size=SEG)  # type: ignore[arg-type]
    assert open_(out.getvalue()) == data


@settings(max_examples=80, deadline=None)
@given(size=st.integers(0, 10 * SEG), offset=st.integers(0, 10 * SEG), length=st.integers(0, 4 * SEG))
def test_read_range_matches_slice(size: int, offset: int, length: int) -> None:
    data = bytes(i % 251 for i in range(size))
    ct = seal(data)
    if offset > size:
        with pytest.raises(InvalidInput):
            read_range(key=KEY, src=io.BytesIO(ct), associated_data=AD, offset=offset, length=length)
        return
    got = read_range(key=KEY, src=io.BytesIO(ct), associated_data=AD, offset=offset, length=length)
    assert got.data == data[offset : offset + length]
    end = min(offset + length, size)
    # an empty range (or one at the end) still authenticates the final segment (issue 12 item 10)
    expected = 1 if end <= offset else (end - 1) // SEG - offset // SEG + 1
    assert got.segments_decrypted == expected


def test_one_mib_range_touches_at_most_two_segments() -> None:
    mib = 1 << 20
    data = os.urandom(3 * mib + 5)
    ct = seal(data, segment_size=mib)
    aligned = read_range(key=KEY, src=io.BytesIO(ct), associated_data=AD, offset=mib, length=mib)
    assert aligned.data == data[mib : 2 * mib] and aligned.segments_decrypted == 1
    for offset in (1, mib // 2, 2 * mib - 1, 2 * mib + 5):
        r = read_range(key=KEY, src=io.BytesIO(ct), associated_data=AD, offset=offset, length=mib)
        assert r.data == data[offset : offset + mib] and r.segments_decrypted <= 2


def test_range_read_skips_untouched_tampered_segment_but_not_touched_one() -> None:
    data = os.urandom(4 * SEG)
    ct = bytearray(seal(data))
    ct[HEADER_SIZE + 3 * (SEG + TAG_SIZE) + 5] ^= 1  # damage segment 3 only
    ok = read_range(key=KEY, src=io.BytesIO(bytes(ct)), associated_data=AD, offset=0, length=2 * SEG)
    assert ok.data == data[: 2 * SEG]
    with pytest.raises(IntegrityError):
        read_range(key=KEY, src=io.BytesIO(bytes(ct)), associated_data=AD, offset=3 * SEG, length=1)


@settings(max_examples=120, deadline=None)
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_is_detected(pos: int, bit: int) -> None:
    data = bytes(range(256)) * 2  # 512 bytes: 8 segments
    ct = bytearray(seal(data))
    ct[pos % len(ct)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        open_(bytes(ct))


def test_header_edit_of_each_byte_is_detected() -> None:
    ct = seal(os.urandom(3 * SEG))
    for i in range(HEADER_SIZE):
        bad = bytearray(ct)
        bad[i] ^= 0x80
        with pytest.raises(IntegrityError):
            open_(bytes(bad))


def test_truncation_is_detected() -> None:
    data = os.urandom(4 * SEG)  # exact multiple: the final segment is full
    ct = seal(data)
    segs = segments(ct)
    header = ct[:HEADER_SIZE]
    # dropping the final segment leaves a well-formed-looking stream whose last segment has flag 0
    with pytest.raises(IntegrityError):
        open_(header + b"".join(segs[:-1]))
    with pytest.raises(IntegrityError):  # a range read of the segment now posing as the last one
        read_range(
            key=KEY,
            src=io.BytesIO(header + b"".join(segs[:-1])),
            associated_data=AD,
            offset=2 * SEG,
            length=5,
        )
    for cut in (1, TAG_SIZE, SEG // 2, len(ct) - HEADER_SIZE - 1):
        with pytest.raises(IntegrityError):
            open_(ct[: len(ct) - cut])
    with pytest.raises(IntegrityError):
        open_(header)


def test_extension_is_detected() -> None:
    ct = seal(os.urandom(3 * SEG + 10))
    segs = segments(ct)
    with pytest.raises(IntegrityError):
        open_(ct + b"\x00")
    with pytest.raises(IntegrityError):
        open_(ct + segs[0])


def test_reordering_and_dropping_are_detected() -> None:
    ct = seal(os.urandom(4 * SEG))
    h, segs = ct[:HEADER_SIZE], segments(ct)
    with pytest.raises(IntegrityError):
        open_(h + segs[1] + segs[0] + segs[2] + segs[3])
    with pytest.raises(IntegrityError):
        open_(h + segs[0] + segs[2] + segs[3])


def test_segment_swap_between_files_is_detected() -> None:
    """Same key, same associated data, same size: still each file has its own salt and nonce prefix."""
    a, b = seal(os.urandom(3 * SEG)), seal(os.urandom(3 * SEG))
    sa, sb = segments(a), segments(b)
    assert open_(a[:HEADER_SIZE] + b"".join(sa))  # the reassembly itself is correct
    with pytest.raises(IntegrityError):
        open_(a[:HEADER_SIZE] + sa[0] + sb[1] + sa[2])
    with pytest.raises(IntegrityError):
        open_(b[:HEADER_SIZE] + b"".join(sa))  # header swap


def test_wrong_key_or_associated_data_fails() -> None:
    ct = seal(b"secret weights")
    with pytest.raises(IntegrityError):
        open_(ct, key=bytes(32))
    with pytest.raises(IntegrityError):
        open_(ct, ad=AD + b"x")
    with pytest.raises(IntegrityError):
        read_range(key=KEY, src=io.BytesIO(ct), associated_data=b"other", offset=0, length=4)


def test_error_message_is_opaque() -> None:
    ct = bytearray(seal(b"secret weights"))
    ct[-1] ^= 1
    with pytest.raises(IntegrityError) as info:
        open_(bytes(ct))
    assert "secret" not in str(info.value) and KEY.hex() not in str(info.value)


def test_nothing_unauthenticated_is_written() -> None:
    data = os.urandom(6 * SEG)
    ct = bytearray(seal(data))
    ct[HEADER_SIZE + 4 * (SEG + TAG_SIZE) + 1] ^= 4  # corrupt segment 4
    out = io.BytesIO()
    with pytest.raises(IntegrityError):
        decrypt_stream(key=KEY, src=io.BytesIO(bytes(ct)), dst=out, associated_data=AD)
    assert out.getvalue() == data[: 4 * SEG]  # only the four authenticated segments


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInput):
        seal(b"x", key=b"short")
    with pytest.raises(InvalidInput):
        seal(b"x", segment_size=8)
    ct = seal(b"abc")
    with pytest.raises(InvalidInput):
        read_range(key=KEY, src=io.BytesIO(ct), associated_data=AD, offset=-1, length=1)


class _Zeros:
    """A large source that costs no memory: ``size`` zero bytes via readinto."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes | memoryview) -> int:
        self.n += len(b)
        return len(b)


def test_memory_is_constant_in_stream_size() -> None:
    """Encrypting 48 MiB with 1 MiB segments allocates a few segment buffers, not the stream."""
    size = 48 << 20
    tracemalloc.start()
    try:
        sink = _Sink()
        info = encrypt_stream(key=KEY, src=_Zeros(size), dst=sink, associated_data=AD)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.segments == 48 and sink.n == info.ciphertext_size
    assert peak < 6 << 20  # three 1 MiB buffers + the source's scratch, never ~48 MiB


def test_decrypt_memory_is_constant_in_stream_size() -> None:
    ct = io.BytesIO()
    encrypt_stream(key=KEY, src=_Zeros(24 << 20), dst=ct, associated_data=AD)
    ct.seek(0)
    tracemalloc.start()
    try:
        sink = _Sink()
        n = decrypt_stream(key=KEY, src=ct, dst=sink, associated_data=AD)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == sink.n == 24 << 20
    assert peak < 6 << 20


# --- DecryptingReader: the seekable view inspectors read stored versions through (issue 12 item 1) ---------


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 6 * SEG),
    reads=st.lists(st.tuples(st.integers(0, 7 * SEG), st.integers(0, 3 * SEG)), max_size=6),
)
def test_decrypting_reader_matches_slices(size: int, reads: list[tuple[int, int]]) -> None:
    data = os.urandom(size)
    reader = DecryptingReader(key=KEY, src=io.BytesIO(seal(data)), associated_data=AD)
    assert reader.size == size and reader.seek(0, io.SEEK_END) == size
    assert reader.segments_decrypted == 1  # the final segment, authenticated up front
    for offset, length in reads:
        reader.seek(offset)
        assert reader.read(length) == data[offset : offset + length]
    reader.seek(0)
    assert reader.read() == data


def test_decrypting_reader_fails_closed_on_truncation_and_tampering() -> None:
    data = os.urandom(5 * SEG + 7)
    ct = seal(data)
    with pytest.raises(IntegrityError):
        DecryptingReader(key=KEY, src=io.BytesIO(ct[: -(7 + 16)]), associated_data=AD)  # final segment cut
    with pytest.raises(IntegrityError):
        DecryptingReader(key=KEY, src=io.BytesIO(ct), associated_data=b"other")
    bad = bytearray(ct)
    bad[len(ct) // 2] ^= 1
    reader = DecryptingReader(key=KEY, src=io.BytesIO(bytes(bad)), associated_data=AD)
    with pytest.raises(IntegrityError):
        reader.read()
