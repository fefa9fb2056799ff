"""The sharp zero-copy cores live under bastion.crypto.hazmat; the old aead names are deprecated aliases."""

from __future__ import annotations

import io
import os

import pytest

from bastion.crypto import aead, hazmat
from bastion.errors import IntegrityError

KEY = bytes(range(32))
AD = b"artifact:v1"


class ListSink:
    """A plain SegmentSink that keeps a copy of every committed segment."""

    def __init__(self) -> None:
        self.header = b""
        self.segments: list[bytes] = []

    def acquire(self, size: int) -> bytearray:
        return bytearray(size)

    def commit(self, buf: bytearray, n: int) -> None:
        self.segments.append(bytes(buf[:n]))

    def write(self, data: bytes) -> int:
        self.header += data
        return len(data)


def test_sharp_names_are_not_in_the_safe_module() -> None:
    assert {"SegmentSink", "encrypt_stream_to", "decrypt_stream_to"} == set(hazmat.__all__)
    assert not {"SegmentSink", "encrypt_stream_to", "decrypt_stream_to"} & set(aead.__all__)


@pytest.mark.parametrize("name", ["SegmentSink", "encrypt_stream_to", "decrypt_stream_to"])
def test_old_aead_names_warn_and_resolve_to_hazmat(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"bastion.crypto.hazmat.{name}"):
        got = getattr(aead, name)
    assert got is getattr(hazmat, name)
    with pytest.raises(AttributeError):
        _ = aead.no_such_name


def test_sink_output_is_the_safe_functions_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same format: with the same randomness (aead._random), the sink sees what encrypt_stream writes."""
    data = os.urandom(5000)
    seed = os.urandom(64)
    monkeypatch.setattr(aead, "_random", lambda n: seed[:n])
    sink = ListSink()
    info = hazmat.encrypt_stream_to(
        key=KEY, src=io.BytesIO(data), sink=sink, associated_data=AD, segment_size=1024
    )
    out = io.BytesIO()
    safe = aead.encrypt_stream(key=KEY, src=io.BytesIO(data), dst=out, associated_data=AD, segment_size=1024)
    assert info == safe
    assert sink.header + b"".join(sink.segments) == out.getvalue()
    back = ListSink()
    assert (
        hazmat.decrypt_stream_to(key=KEY, src=io.BytesIO(out.getvalue()), sink=back, associated_data=AD)
        == 5000
    )
    assert b"".join(back.segments) == data


def test_decrypt_to_commits_authenticated_segments_before_a_truncation_is_found() -> None:
    """The sharp edge the module docstring names: a sink must discard what it got when the call raises."""
    data = os.urandom(4096)
    out = io.BytesIO()
    aead.encrypt_stream(key=KEY, src=io.BytesIO(data), dst=out, associated_data=AD, segment_size=1024)
    truncated = out.getvalue()[: aead.HEADER_SIZE + 2 * (1024 + aead.TAG_SIZE)]
    sink = ListSink()
    with pytest.raises(IntegrityError):
        hazmat.decrypt_stream_to(key=KEY, src=io.BytesIO(truncated), sink=sink, associated_data=AD)
    assert (
        b"".join(sink.segments) == data[:1024]
    )  # segment 0 authenticated; segment 1 was sealed as non-final
    with pytest.raises(
        IntegrityError
    ):  # the safe function raises the same way (callers write to a temporary)
        aead.decrypt_stream(key=KEY, src=io.BytesIO(truncated), dst=io.BytesIO(), associated_data=AD)
