"""Content-addressed, atomic blob storage."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import blake3
import pytest

from bastion.errors import InvalidInput, NotFound
from bastion.store.blobs import BlobStore, FileBlobStore


def test_put_open_exists_delete(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    assert isinstance(store, BlobStore)
    data = b"ciphertext" * 1000
    digest = store.put(io.BytesIO(data))
    assert digest == "b3-" + blake3.blake3(data).hexdigest(length=30)  # BLAKE3 of the content, 240 bits
    assert len(digest) <= 64  # fits the files.blob column
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
    for bad in (
        "../../etc/passwd",
        "AB" * 32,
        "0" * 63,
        "",
        "b3-" + "0" * 59,
        "b3-" + "0" * 64,
        "B3-" + "0" * 60,
        "b3-" + "A" * 60,
        "b3-../" + "0" * 56,
        "blake3/" + "0" * 57,
    ):
        with pytest.raises(InvalidInput):
            store.open(bad)


def test_legacy_sha256_ids_are_still_read_next_to_blake3_ones(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    new = store.put(io.BytesIO(b"new blob"))
    # a SHA-256 id starting with "b3" (valid hex) must not meet the BLAKE3 tree
    legacy_ids = []
    for i in range(2000):
        data = b"legacy %d" % i
        legacy = hashlib.sha256(data).hexdigest()
        if legacy.startswith("b3") or not legacy_ids:
            tmp = tmp_path / f".tmp-{i}"
            tmp.write_bytes(data)
            legacy_ids.append(store.put_file(tmp, legacy))
        if len(legacy_ids) == 2:
            break
    assert len(legacy_ids) == 2 and legacy_ids[1].startswith("b3")
    for legacy in legacy_ids:
        assert store.exists(legacy)
        with store.open(legacy) as f:
            assert hashlib.sha256(f.read()).hexdigest() == legacy
    assert set(store.digests()) == {new, *legacy_ids}
    assert store.gc([legacy_ids[1]]) == 2
    assert list(store.digests()) == [legacy_ids[1]]


def test_gc_removes_orphans_and_temporaries(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    keep = store.put(io.BytesIO(b"keep"))
    drop = store.put(io.BytesIO(b"drop"))
    (tmp_path / ".tmp-crashed").write_bytes(b"partial")
    assert store.gc([keep]) == 2
    assert store.exists(keep) and not store.exists(drop)
