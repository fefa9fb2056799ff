"""The push data path: one read of each file, then inspection of what was stored.

Each source file is read once, from one descriptor (:mod:`bastion.vault._source`). The bytes of that read are
SHA-256-hashed (the digest model-signing signs and the manifest records), sealed by the segmented AEAD
(associated data ``name ‖ version ‖ path``; the header is bound to every segment by the AEAD itself) and
written to a blob whose BLAKE3 content address is computed in the same pass (:class:`HashingSink`). Nothing
re-reads the source: whatever the file contained while push read it is exactly what is stored, signed and,
afterwards, inspected through :class:`StoredVersion` (authenticated range reads of the blobs just written).
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bastion.crypto.aead import DecryptingReader
from bastion.crypto.hazmat import decrypt_stream_to, encrypt_stream_to
from bastion.errors import IntegrityError, NotFound, UnsafeArtifact
from bastion.store.blobs import BlobStore, FileBlobStore
from bastion.vault._io import INLINE_BELOW, HashingSink
from bastion.vault.interface import StoredInspector
from bastion.vault.manifest import segment_associated_data


class _HashingReader:
    """``readinto`` through to ``fh``; SHA-256 of every byte handed out (the bytes that then get encrypted).

    With ``threaded=True`` each chunk read is copied into a pool buffer and hashed on a helper thread, so
    SHA-256 runs beside the AES-GCM of the caller's thread (a memory copy costs far less than SHA-256).
    The digest covers exactly the bytes returned to the caller, in order.
    """

    POOL = 8

    def __init__(self, fh: BinaryIO, *, threaded: bool) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self.size = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
            self._work: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
            self._made = 0
            self._thread = threading.Thread(target=self._run, name="bastion-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            buf, n = item
            if self._error is None:
                try:
                    self._sha.update(memoryview(buf)[:n])
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            self._free.put(buf)

    def _buffer(self, n: int) -> bytearray:
        while True:
            try:
                buf = self._free.get_nowait()
            except queue.Empty:
                if self._made < self.POOL:
                    self._made += 1
                    return bytearray(n)
                buf = self._free.get()
            if len(buf) >= n:
                return buf
            self._made -= 1

    def readinto(self, buf: Any) -> int:
        n = int(self._fh.readinto(buf) or 0)  # type: ignore[attr-defined]
        if n:
            view = memoryview(buf)[:n]
            if self._thread is None:
                self._sha.update(view)
            else:
                if self._error is not None:
                    raise self._error
                copy = self._buffer(n)
                copy[:n] = view
                self._work.put((copy, n))
            self.size += n
        return n

    def hexdigest(self) -> str:
        """Wait for the helper and return the digest of everything read."""
        self.stop()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()

    def stop(self) -> None:
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None


@dataclass(frozen=True)
class StoredFile:
    path: str
    sha256: str
    size: int
    blob: str


def encrypt_file(
    src: BinaryIO, *, blobs: BlobStore, dek: bytes, ad: bytes, tmp: Path, path: str
) -> StoredFile:
    """Read ``src`` once: hash the plaintext, encrypt it into a blob, content-address the ciphertext."""
    direct = isinstance(blobs, FileBlobStore)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=blobs.root if direct else tmp)  # type: ignore[attr-defined]
    try:
        try:
            small = os.fstat(src.fileno()).st_size < INLINE_BELOW
            reader = _HashingReader(src, threaded=not small)
            sink = HashingSink(fd, inline=small, content_address=True)
            try:
                encrypt_stream_to(key=dek, src=reader, sink=sink, associated_data=ad)  # type: ignore[arg-type]
            except BaseException:
                sink.abort()
                reader.stop()
                raise
            blob_id = sink.close()
            sha256 = reader.hexdigest()
            os.fsync(fd)
        finally:
            os.close(fd)
        if direct:
            blob_id = blobs.put_file(tmp_name, blob_id, sync_dir=False)  # type: ignore[attr-defined]
        else:
            with open(tmp_name, "rb") as f:
                blob_id = blobs.put(f)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return StoredFile(path=path, sha256=sha256, size=reader.size, blob=blob_id)


class StoredVersion:
    """A :class:`~bastion.vault.interface.StoredArtifact` over blobs just written (before the commit)."""

    def __init__(
        self,
        *,
        name: str,
        version: int,
        stored: Mapping[str, StoredFile],
        blobs: BlobStore,
        dek: bytes,
        ad: Callable[[str], bytes],
    ) -> None:
        self._name = name
        self._version = version
        self._stored = dict(stored)
        self._blobs = blobs
        self._dek = dek
        self._ad = ad

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int:
        return self._version

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(self._stored))

    def size(self, path: str) -> int:
        return self._get(path).size

    def _get(self, path: str) -> StoredFile:
        try:
            return self._stored[path]
        except KeyError as exc:
            raise NotFound(f"{self._name}:{self._version} has no file {path!r}") from exc

    def _open_blob(self, blob: str) -> BinaryIO:
        try:
            return self._blobs.open(blob)
        except NotFound as exc:
            raise IntegrityError(f"{self._name}:{self._version}: a blob vanished from the store") from exc

    def open(self, path: str) -> BinaryIO:
        f = self._get(path)
        handle = self._open_blob(f.blob)
        try:
            reader = DecryptingReader(
                key=self._dek, src=handle, associated_data=self._ad(path), close_source=True
            )
        except BaseException:
            handle.close()
            raise
        if reader.size != f.size:
            reader.close()
            raise IntegrityError(f"{self._name}:{self._version}: stored {path} is not what was read")
        return reader  # type: ignore[return-value]

    def decrypt_to(self, root: Path) -> None:
        """Decrypt every file under ``root`` (mode 0600 files, 0700 directories), checking each digest."""
        for rel in self.files:
            f = self._stored[rel]
            target = root / rel
            for parent in reversed(target.relative_to(root).parents):
                if str(parent) != ".":
                    d = root / parent
                    if not d.is_dir():
                        os.mkdir(d, 0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                sink = HashingSink(fd, inline=f.size < INLINE_BELOW)
                try:
                    with self._open_blob(f.blob) as src:
                        decrypt_stream_to(key=self._dek, src=src, sink=sink, associated_data=self._ad(rel))
                except BaseException:
                    sink.abort()
                    raise
                digest = sink.close()
            finally:
                os.close(fd)
            if digest != f.sha256 or sink.size != f.size:
                raise IntegrityError(f"{self._name}:{self._version}: stored {rel} is not what was read")


def run_inspectors(
    inspectors: Sequence[Any],
    stored: StoredVersion,
    *,
    workdir: Callable[[], AbstractContextManager[Path]],
    single_file: bool,
    on_finding: Callable[[UnsafeArtifact], None],
) -> None:
    """Run every inspector on the stored version; each :class:`UnsafeArtifact` goes to ``on_finding``
    (which re-raises it, unless an admin pushes with ``allow_unsafe``).

    :class:`StoredInspector` objects read it through range reads; plain path inspectors get a private
    decrypted copy (made once, deleted afterwards) laid out like the source (a file, or a directory).
    """
    path_inspectors = []
    for inspector in inspectors:
        if isinstance(inspector, StoredInspector):
            try:
                inspector.inspect_stored(stored)
            except UnsafeArtifact as exc:
                on_finding(exc)
        else:
            path_inspectors.append(inspector)
    if not path_inspectors:
        return
    with workdir() as tmp:
        root = tmp / "artifact"
        os.mkdir(root, 0o700)
        stored.decrypt_to(root)
        target = root / stored.files[0] if single_file else root
        for inspector in path_inspectors:
            try:
                inspector(target)
            except UnsafeArtifact as exc:
                on_finding(exc)


__all__ = ["StoredFile", "StoredVersion", "encrypt_file", "run_inspectors", "segment_associated_data"]
