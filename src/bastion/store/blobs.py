"""Content-addressed blob storage behind a small ``BlobStore`` protocol.

``FileBlobStore`` names each blob by a hash of its bytes (the ciphertext: the store never sees plaintext). New
blobs get BLAKE3 ids, ``b3-`` followed by 60 hex characters (a 240-bit BLAKE3 output, so an id fits the
64-character ``files.blob`` column); ids made of 64 hex characters (SHA-256, the format before BLAKE3) are
still read. An id is only an address: the plaintext's integrity rests on the signed SHA-256 manifest and the
AEAD, never on the blob's name. Writes go to a temporary file in the same directory, are fsync'ed, then
renamed into place, so a crash leaves either no blob or a whole one (orphan temporaries and unreferenced blobs
are harmless and can be collected with :meth:`FileBlobStore.gc`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import blake3

from bastion.config import Settings
from bastion.errors import ConfigError, InvalidInput, NotFound
from bastion.files import fsync_dir
from bastion.store.interface import BlobStore

BLAKE3_PREFIX = "b3-"
BLAKE3_ID_BYTES = 30  # 240 bits: ``b3-`` + 60 hex characters = 63 <= the 64-character database column
_SHA256_ID = re.compile(r"^[0-9a-f]{64}$")
_BLAKE3_ID = re.compile(r"^b3-[0-9a-f]{60}$")
_BLAKE3_DIR = "blake3"  # not two hex characters, so it never meets a legacy SHA-256 directory
CHUNK = 1 << 20


def content_hasher() -> blake3.blake3:
    """A fresh hasher for a blob's content address (BLAKE3; it may use several threads on large updates)."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def content_id(hasher: blake3.blake3) -> str:
    """The blob id of everything a :func:`content_hasher` was fed: ``b3-`` + 60 hex characters."""
    return BLAKE3_PREFIX + hasher.hexdigest(length=BLAKE3_ID_BYTES)


def is_blob_id(digest: str) -> bool:
    """Whether ``digest`` is a well-formed blob id (BLAKE3 ``b3-…`` or legacy SHA-256 hex)."""
    return bool(_BLAKE3_ID.match(digest) or _SHA256_ID.match(digest))


def _check(digest: str) -> str:
    if not is_blob_id(digest):
        raise InvalidInput("blob id must be 'b3-' and 60 lowercase hex characters (or 64 for SHA-256)")
    return digest


def _make_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, fsyncing each new entry's parent so it survives a crash."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # whatever the umask
    fsync_dir(path.parent)


class FileBlobStore:
    """Blobs named by a hash of their content.

    ``root/blake3/ab/cdef…`` for BLAKE3 ids, ``root/ab/cdef…`` for legacy SHA-256 ones.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, digest: str) -> Path:
        digest = _check(digest)
        if digest.startswith(BLAKE3_PREFIX):
            hex_ = digest[len(BLAKE3_PREFIX) :]
            return self.root / _BLAKE3_DIR / hex_[:2] / hex_[2:]
        return self.root / digest[:2] / digest[2:]

    def put(self, stream: BinaryIO) -> str:
        """Store the bytes read from ``stream``; returns their blob id (BLAKE3, see :func:`content_id`)."""
        hasher = content_hasher()
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(tmp, content_id(hasher))
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: str | os.PathLike[str], digest: str, *, sync_dir: bool = True) -> str:
        """Move an already written, fsync'ed file whose blob id the caller computed into the store.

        The file must lie in :attr:`root` (a rename, not a copy). ``sync_dir=False`` leaves the directory
        fsync to a later :meth:`sync` over several blobs (one fsync per directory instead of one per blob);
        the rename is durable only after that call.
        """
        return self._commit(Path(path), _check(digest), sync_dir=sync_dir)

    def sync(self, digests: Iterable[str]) -> None:
        """Make the renames of these blobs durable: fsync each of their directories once."""
        for parent in sorted({self.path(d).parent for d in digests}):
            fsync_dir(parent)

    def _commit(self, tmp: Path, digest: str, *, sync_dir: bool = True) -> str:
        final = self.path(digest)
        _make_dirs(final.parent)
        if final.exists():
            tmp.unlink(missing_ok=True)
            return digest
        os.replace(tmp, final)
        if sync_dir:
            fsync_dir(final.parent)
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
        """Every stored blob id (BLAKE3 ones first, then legacy SHA-256 ones)."""
        b3_root = self.root / _BLAKE3_DIR
        if b3_root.is_dir():
            for sub in sorted(b3_root.iterdir()):
                if sub.is_dir() and len(sub.name) == 2:
                    for f in sorted(sub.iterdir()):
                        name = BLAKE3_PREFIX + sub.name + f.name
                        if _BLAKE3_ID.match(name):
                            yield name
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    name = sub.name + f.name
                    if _SHA256_ID.match(name):
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


_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")


def open_blob_store(settings: Settings) -> BlobStore:
    """The project's blob store, chosen by ``[blobs]`` in bastion.toml.

    ``url = "s3://bucket/prefix"`` selects :class:`~bastion.store.s3.S3BlobStore` (optional ``endpoint_url``
    for MinIO/Ceph RGW/a test server, and ``region``; the endpoint may also come from ``AWS_ENDPOINT_URL``).
    Credentials are never configured here (an unknown key such as ``secret_access_key`` is refused): boto3's
    standard chain finds them (environment, shared files, instance or container role). Without ``url``, the
    filesystem store at ``path`` (default ``HOME/blobs``).
    """
    section = settings.section("blobs")
    url = section.get("url")
    if url is None:
        return FileBlobStore(settings.blob_dir)
    if "path" in section:
        raise ConfigError("[blobs] takes either path (a directory) or url (s3://bucket/prefix), not both")
    m = _S3_URL.match(url) if isinstance(url, str) else None
    if m is None:
        raise ConfigError("[blobs] url must be s3://bucket/prefix (an S3-compatible object store)")
    options = {}
    for key in ("endpoint_url", "region"):
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"[blobs] {key} must be a non-empty string")
        options[key] = value
    from bastion.store.s3 import S3BlobStore

    return S3BlobStore(
        bucket=m.group(1),
        prefix=m.group(2) or "",
        endpoint_url=options["endpoint_url"],
        region=options["region"],
    )


__all__ = ["BlobStore", "FileBlobStore", "content_hasher", "content_id", "is_blob_id", "open_blob_store"]
