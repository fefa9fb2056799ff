"""Content-addressed blob storage behind a small ``BlobStore`` protocol.

``FileBlobStore`` names each blob by the SHA-256 of its bytes (the ciphertext: the store never sees
plaintext). Writes go to a temporary file in the same directory, are fsync'ed, then renamed into place, so a
crash leaves either no blob or a whole one (orphan temporaries and unreferenced blobs are harmless and can be
collected with :meth:`FileBlobStore.gc`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from bastion.errors import InvalidInput, NotFound

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


@runtime_checkable
class BlobStore(Protocol):
    """Where encrypted bytes live (filesystem here; object storage in a larger deployment)."""

    def put(self, stream: BinaryIO) -> str: ...

    def open(self, digest: str) -> BinaryIO: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...


def _check(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise InvalidInput("blob digest must be 64 lowercase hex characters")
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    """Blobs under ``root/ab/cdef…`` named by the SHA-256 of their content."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        digest = _check(digest)
        return self.root / digest[:2] / digest[2:]

    def put(self, stream: BinaryIO) -> str:
        """Store the bytes read from ``stream``; returns their SHA-256 (hex)."""
        hasher = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            return self._commit(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: str | os.PathLike[str], digest: str, *, sync_dir: bool = True) -> str:
        """Move an already written, fsync'ed file whose SHA-256 the caller computed into the store.

        The file must lie in :attr:`root` (a rename, not a copy). ``sync_dir=False`` leaves the directory
        fsync to a later :meth:`sync` over several blobs (one fsync per directory instead of one per blob);
        the rename is durable only after that call.
        """
        return self._commit(Path(path), _check(digest), sync_dir=sync_dir)

    def sync(self, digests: Iterable[str]) -> None:
        """Make the renames of these blobs durable: fsync each of their directories once."""
        for parent in sorted({self.path(d).parent for d in digests}):
            _fsync_dir(parent)

    def _commit(self, tmp: Path, digest: str, *, sync_dir: bool = True) -> str:
        final = self.path(digest)
        final.parent.mkdir(exist_ok=True)
        if final.exists():
            tmp.unlink(missing_ok=True)
            return digest
        os.replace(tmp, final)
        if sync_dir:
            _fsync_dir(final.parent)
        return digest

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest[:12]}… is missing from the blob store") from exc

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterable[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    name = sub.name + f.name
                    if _DIGEST.match(name):
                        yield name

    def gc(self, referenced: Iterable[str]) -> int:
        """Delete blobs not in ``referenced`` and stale temporaries; returns how many files were removed."""
        keep = set(referenced)
        removed = 0
        for digest in list(self.digests()):
            if digest not in keep:
                self.delete(digest)
                removed += 1
        for tmp in self.root.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


__all__ = ["BlobStore", "FileBlobStore"]
