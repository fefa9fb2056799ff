"""Blob-store conformance (issue 13 item 5): the contract of :class:`bastion.store.interface.BlobStore`, run
for every implementation (today the filesystem store; an object-storage one joins ``STORES``)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.crypto.aead import decrypt_stream, encrypt_stream
from bastion.crypto.interface import new_dek
from bastion.errors import IntegrityError, InvalidInput, NotFound
from bastion.store.blobs import FileBlobStore
from bastion.store.interface import BlobStore


def _file_store(tmp_path: Path) -> tuple[BlobStore, Callable[[str], None]]:
    store = FileBlobStore(tmp_path / "blobs")

    def flip_last_byte(blob_id: str) -> None:  # what a writer of the storage can do
        path = store.path(blob_id)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))

    return store, flip_last_byte


STORES = [pytest.param(_file_store, id="file")]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BlobStore, Callable[[str], None]]:
    return request.param(tmp_path)  # type: ignore[no-any-return]


def test_is_a_blob_store(store: tuple[BlobStore, Callable[[str], None]]) -> None:
    assert isinstance(store[0], BlobStore)


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 3])
def test_put_open_round_trip_is_content_addressed(
    store: tuple[BlobStore, Callable[[str], None]], size: int
) -> None:
    blobs, _ = store
    data = os.urandom(size)
    blob_id = blobs.put(io.BytesIO(data))
    assert blobs.exists(blob_id)
    assert blobs.put(io.BytesIO(data)) == blob_id  # same bytes, same id (idempotent)
    assert blobs.put(io.BytesIO(data + b"x")) != blob_id
    with blobs.open(blob_id) as fh:
        assert fh.read() == data
        fh.seek(size // 2)
        assert fh.read() == data[size // 2 :]


def test_missing_and_deleted_blobs(store: tuple[BlobStore, Callable[[str], None]]) -> None:
    blobs, _ = store
    blob_id = blobs.put(io.BytesIO(b"ciphertext"))
    blobs.delete(blob_id)
    assert not blobs.exists(blob_id)
    blobs.delete(blob_id)  # idempotent
    with pytest.raises(NotFound):
        blobs.open(blob_id)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "", "b3-" + "0" * 59, "B3-" + "0" * 60, "g" * 64, "/" + "0" * 63]
)
def test_malformed_ids_are_refused(store: tuple[BlobStore, Callable[[str], None]], bad: str) -> None:
    blobs, _ = store
    with pytest.raises(InvalidInput):
        blobs.open(bad)
    with pytest.raises(InvalidInput):
        blobs.exists(bad)
    with pytest.raises(InvalidInput):
        blobs.delete(bad)


def test_a_tampered_blob_is_caught_when_read(store: tuple[BlobStore, Callable[[str], None]]) -> None:
    """The store is untrusted: it hands back what it holds, and the AEAD refuses a changed blob."""
    blobs, tamper = store
    key, plain = new_dek(), os.urandom(200_000)
    sealed = io.BytesIO()
    encrypt_stream(key=key, src=io.BytesIO(plain), dst=sealed, associated_data=b"m:1:w")
    sealed.seek(0)
    blob_id = blobs.put(sealed)
    with blobs.open(blob_id) as fh:
        out = io.BytesIO()
        decrypt_stream(key=key, src=fh, dst=out, associated_data=b"m:1:w")
        assert out.getvalue() == plain
    tamper(blob_id)
    with blobs.open(blob_id) as fh, pytest.raises(IntegrityError):
        decrypt_stream(key=key, src=fh, dst=io.BytesIO(), associated_data=b"m:1:w")
