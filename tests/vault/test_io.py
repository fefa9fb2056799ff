"""The vault's one-pass data path: pipelined hashing sinks, sink-based AEAD streams, batched blob renames."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import blake3
import pytest
import sqlalchemy as sa

from bastion.crypto.aead import HEADER_SIZE, TAG_SIZE, decrypt_stream, encrypt_stream
from bastion.crypto.hazmat import decrypt_stream_to, encrypt_stream_to
from bastion.errors import IntegrityError
from bastion.store.blobs import FileBlobStore, content_hasher, content_id
from bastion.store.tables import files
from bastion.vault import Vault
from bastion.vault._io import INLINE_BELOW, HashingSink, sha256_file

KEY = bytes(range(32))
AD = b"bastion-test"


class MemorySink:
    """A plain SegmentSink keeping what it was given (to compare with the pipelined one)."""

    def __init__(self) -> None:
        self.out = bytearray()

    def acquire(self, size: int) -> bytearray:
        return bytearray(size)

    def commit(self, buf: bytearray, n: int) -> None:
        self.out += buf[:n]

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)


@pytest.mark.parametrize("size", [0, 1, 4095, INLINE_BELOW - 1, INLINE_BELOW, 3 * INLINE_BELOW + 17])
def test_sha256_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == (hashlib.sha256(data).hexdigest(), size)


@pytest.mark.parametrize("inline", [False, True])
def test_hashing_sink_writes_and_hashes_every_byte_in_order(tmp_path: Path, inline: bool) -> None:
    chunks = [os.urandom(n) for n in (10, 1 << 20, 5, (1 << 20) + 16, 0, 333)]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sink = HashingSink(fd, inline=inline)
        for chunk in chunks:
            if len(chunk) < 100:
                sink.write(chunk)
            else:
                buf = sink.acquire(len(chunk))
                buf[: len(chunk)] = chunk
                sink.commit(buf, len(chunk))
        digest = sink.close()
    finally:
        os.close(fd)
    whole = b"".join(chunks)
    assert digest == hashlib.sha256(whole).hexdigest()
    assert sink.size == len(whole)
    assert (tmp_path / "out").read_bytes() == whole


def test_hashing_sink_reraises_a_write_error_on_the_callers_thread(tmp_path: Path) -> None:
    (tmp_path / "ro").write_bytes(b"")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)  # writes fail with EBADF on the writer thread
    try:
        sink = HashingSink(fd)
        with pytest.raises(OSError):
            for _ in range(64):
                buf = sink.acquire(1 << 20)
                sink.commit(buf, 1 << 20)
            sink.close()
        sink.abort()
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 4096 * 3, 4096 * 3 + 1])
def test_sink_streams_are_the_same_format_as_the_file_streams(size: int) -> None:
    data = os.urandom(size)
    mem = MemorySink()
    info = encrypt_stream_to(key=KEY, src=io.BytesIO(data), sink=mem, associated_data=AD, segment_size=4096)
    assert info.ciphertext_size == len(mem.out) == HEADER_SIZE + size + info.segments * TAG_SIZE
    plain = io.BytesIO()
    assert decrypt_stream(key=KEY, src=io.BytesIO(bytes(mem.out)), dst=plain, associated_data=AD) == size
    assert plain.getvalue() == data
    ct = io.BytesIO()
    encrypt_stream(key=KEY, src=io.BytesIO(data), dst=ct, associated_data=AD, segment_size=4096)
    back = MemorySink()
    decrypt_stream_to(key=KEY, src=io.BytesIO(ct.getvalue()), sink=back, associated_data=AD)
    assert bytes(back.out) == data


def test_pipelined_decrypt_commits_nothing_unauthenticated(tmp_path: Path) -> None:
    data = os.urandom(4096 * 5)
    ct = io.BytesIO()
    encrypt_stream(key=KEY, src=io.BytesIO(data), dst=ct, associated_data=AD, segment_size=4096)
    blob = bytearray(ct.getvalue())
    blob[HEADER_SIZE + 2 * (4096 + TAG_SIZE) + 7] ^= 1  # third segment
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sink = HashingSink(fd)
        with pytest.raises(IntegrityError):
            decrypt_stream_to(key=KEY, src=io.BytesIO(bytes(blob)), sink=sink, associated_data=AD)
        sink.abort()
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == data[: 2 * 4096]


@pytest.mark.parametrize("inline", [False, True])
@pytest.mark.parametrize("content_address", [False, True])
def test_pipelined_encrypt_hashes_the_exact_ciphertext(
    tmp_path: Path, inline: bool, content_address: bool
) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        sink = HashingSink(fd, inline=inline, content_address=content_address)
        encrypt_stream_to(key=KEY, src=io.BytesIO(data), sink=sink, associated_data=AD)
        digest = sink.close()
    finally:
        os.close(fd)
    blob = (tmp_path / "blob").read_bytes()
    if content_address:  # the blob id: BLAKE3 of the ciphertext, computed independently here
        assert digest == "b3-" + blake3.blake3(blob).hexdigest(length=30)
    else:
        assert digest == hashlib.sha256(blob).hexdigest()
    out = io.BytesIO()
    decrypt_stream(key=KEY, src=io.BytesIO(blob), dst=out, associated_data=AD)
    assert out.getvalue() == data


def test_put_file_without_dir_sync_then_sync(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    digests = []
    for i in range(3):
        tmp = store.root / f".tmp-{i}"
        tmp.write_bytes(b"blob %d" % i)
        hasher = content_hasher()
        hasher.update(b"blob %d" % i)
        digests.append(store.put_file(tmp, content_id(hasher), sync_dir=False))
    store.sync(digests)
    for i, d in enumerate(digests):
        with store.open(d) as f:
            assert f.read() == b"blob %d" % i
    assert not list(store.root.glob(".tmp-*"))


def test_pushed_blobs_are_named_by_the_blake3_of_their_ciphertext(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="m")
    with vault.engine.connect() as conn:
        ids = conn.execute(sa.select(files.c.blob)).scalars().all()
    assert ids
    for blob_id in ids:
        assert blob_id.startswith("b3-") and len(blob_id) <= 64  # fits the files.blob column
        with vault.blobs.open(blob_id) as f:
            assert blob_id == "b3-" + blake3.blake3(f.read()).hexdigest(length=30)


def test_versions_with_legacy_sha256_blob_ids_still_pull(
    vault: Vault, artifact: Path, tmp_path: Path
) -> None:
    """Blobs stored under SHA-256 ids (the format before BLAKE3) are still read and fully verified."""
    vault.push(artifact, name="m")
    store = vault.blobs
    assert isinstance(store, FileBlobStore)
    with vault.engine.begin() as conn:
        for row_id, blob_id in conn.execute(sa.select(files.c.id, files.c.blob)).all():
            data = store.path(blob_id).read_bytes()
            legacy = hashlib.sha256(data).hexdigest()
            store.path(legacy).parent.mkdir(parents=True, exist_ok=True)
            store.path(blob_id).rename(store.path(legacy))
            conn.execute(sa.update(files).where(files.c.id == row_id).values(blob=legacy))
    vault.verify("m:1")
    vault.pull("m:1", out=tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (artifact / "weights.bin").read_bytes()
    # and a legacy blob is authenticated like any other: one flipped byte fails verify
    with vault.engine.connect() as conn:
        legacy = conn.execute(sa.select(files.c.blob).where(files.c.path == "weights.bin")).scalar_one()
    path = store.path(legacy)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        vault.verify("m:1")
