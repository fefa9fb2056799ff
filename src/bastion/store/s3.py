"""A :class:`~bastion.store.interface.BlobStore` on an S3-compatible object store (AWS S3, MinIO, Ceph RGW).

``put`` streams the ciphertext as a multipart upload to a temporary key (``<prefix>tmp/<random>``) while
hashing it (BLAKE3, the same ids as :class:`~bastion.store.blobs.FileBlobStore`), then copies it server side
to ``<prefix>blobs/<id>`` and deletes the temporary key: memory stays at one part (8 MiB) for any blob size,
and a crash leaves at most an orphan temporary (and an incomplete multipart upload, aborted on error; a bucket
lifecycle rule should expire the rest). ``open`` returns a seekable reader that fetches byte ranges
(``Range: bytes=a-b``) as it is read, so ``read_range`` on a large model reads only what it asks for.

Credentials come from boto3's standard chain (environment, shared config/credentials files, instance or
container role); this module never reads, logs or puts them in an error message. Errors name the operation and
the S3 error code only. With bucket versioning, ``delete`` adds a delete marker (older versions stay, as the
bucket's owner chose); with object lock, a retained object is not removed (the delete fails or leaves the
locked version, per the bucket's mode). Integrity never rests on the store: the AEAD catches changed bytes.
"""

from __future__ import annotations

import contextlib
import io
import secrets
from typing import Any, BinaryIO

from bastion.errors import DependencyMissing, InvalidInput, NotFound, ServiceError
from bastion.store.blobs import content_hasher, content_id, is_blob_id

PART_SIZE = 8 << 20  # S3's minimum part is 5 MiB (but the last)


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise DependencyMissing("the S3 blob store needs boto3", hint="pip install 'bastion-ml[s3]'") from exc
    return boto3


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or type(exc).__name__)


def _check(digest: str) -> str:
    if not is_blob_id(digest):
        raise InvalidInput("blob id must be 'b3-' and 60 lowercase hex characters (or 64 for SHA-256)")
    return digest


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; short only at the end of the stream (S3 parts but the last are >= 5 MiB)."""
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(size - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class _RangeReader(io.RawIOBase):
    """A read-only, seekable view of one object; each read is one ranged GET."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._store._get_range(self._key, self._pos, self._pos + want - 1)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        """The rest of the object, one GET per ``PART_SIZE`` (``RawIOBase.readall`` sends one per 8 KiB)."""
        parts = []
        while self._pos < self._size:
            data = self._store._get_range(self._key, self._pos, min(self._size, self._pos + PART_SIZE) - 1)
            if not data:
                break
            parts.append(data)
            self._pos += len(data)
        return b"".join(parts)


class S3BlobStore:
    """Blobs in ``bucket`` under ``prefix``; ``endpoint_url`` for MinIO, Ceph RGW or a local test server."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise InvalidInput("an S3 blob store needs a bucket")
        if part_size < 5 << 20:
            raise InvalidInput("part_size must be at least 5 MiB (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self._s3 = client or _boto3().client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, digest: str) -> str:
        return f"{self.prefix}blobs/{_check(digest)}"

    def _fail(self, what: str, exc: Exception) -> ServiceError:
        return ServiceError(f"S3 {what} failed in bucket {self.bucket!r} ({_code(exc)})")

    def put(self, stream: BinaryIO) -> str:
        hasher = content_hasher()
        tmp = f"{self.prefix}tmp/{secrets.token_hex(16)}"
        upload_id = None
        try:
            upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=tmp)["UploadId"]
            parts = []
            number = 1
            while True:
                chunk = _read_full(stream, self.part_size)
                if not chunk and number > 1:
                    break
                hasher.update(chunk)
                etag = self._s3.upload_part(
                    Bucket=self.bucket, Key=tmp, PartNumber=number, UploadId=upload_id, Body=chunk
                )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
                number += 1
                if not chunk:
                    break
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=tmp, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            upload_id = None
            blob_id = content_id(hasher)
            if not self.exists(blob_id):
                self._s3.copy({"Bucket": self.bucket, "Key": tmp}, self.bucket, self._key(blob_id))
            return blob_id
        except Exception as exc:
            if isinstance(exc, (InvalidInput, NotFound, ServiceError)):
                raise
            raise self._fail("upload", exc) from exc
        finally:
            # Best effort: an orphan temporary is harmless and a bucket lifecycle rule collects it.
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    self._s3.abort_multipart_upload(Bucket=self.bucket, Key=tmp, UploadId=upload_id)
            with contextlib.suppress(Exception):
                self._s3.delete_object(Bucket=self.bucket, Key=tmp)

    def _size(self, key: str) -> int | None:
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail("head", exc) from exc

    def _get_range(self, key: str, first: int, last: int) -> bytes:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
            return bytes(body.read())
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                raise NotFound("blob not found") from exc
            raise self._fail("ranged read", exc) from exc

    def open(self, digest: str) -> BinaryIO:
        key = self._key(digest)
        size = self._size(key)
        if size is None:
            raise NotFound(f"blob {digest} not found")
        return io.BufferedReader(_RangeReader(self, key, size), buffer_size=1 << 20)  # type: ignore[return-value]

    def exists(self, digest: str) -> bool:
        return self._size(self._key(digest)) is not None

    def delete(self, digest: str) -> None:
        key = self._key(digest)
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                return
            raise self._fail("delete", exc) from exc


__all__ = ["PART_SIZE", "S3BlobStore"]
