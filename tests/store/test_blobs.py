"""Content-addressed, atomic blob storage."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from bastion.errors import InvalidInput, NotFound
from bastion.store.blobs import BlobStore, FileBlobStore


def test_put_open_exists_delete(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    assert isinstance(store, BlobStore)
    data = b"ciphertext" * 1000
    digest = store.put(io.BytesIO(data))
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    with store.open(digest) as f:
        assert f.read() == data
    assert store.put(io.BytesIO(data)) == digest  # idempotent: same content, same name
    assert list(store.digests()) == [digest]
    assert not list((tmp_path / "blobs").glob(".tmp-*"))  # no temporaries left
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.open(digest)


def test_rejects_malformed_digests(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    for bad in ("../../etc/passwd", "AB" * 32, "0" * 63, ""):
        with pytest.raises(InvalidInput):
            store.open(bad)


def test_gc_removes_orphans_and_temporaries(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    keep = store.put(io.BytesIO(b"keep"))
    drop = store.put(io.BytesIO(b"drop"))
    (tmp_path / ".tmp-crashed").write_bytes(b"partial")
    assert store.gc([keep]) == 2
    assert store.exists(keep) and not store.exists(drop)
