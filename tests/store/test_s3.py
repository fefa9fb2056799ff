"""The S3 blob store against a real S3-API server process (moto in server mode) on 127.0.0.1.

The BlobStore conformance tests (tests/conformance/test_blob_stores.py) run over it here too, plus: multipart
streaming (several parts, a stream that returns short reads), ranged reads, and no credential in any error.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from bastion.errors import ServiceError  # noqa: E402
from bastion.store.interface import BlobStore  # noqa: E402
from bastion.store.s3 import S3BlobStore  # noqa: E402

from .._support.moto import SECRET, moto_server  # noqa: E402


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard environment chain: boto3 finds these itself."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bastion-test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


_N = iter(range(10**6))


def _new_store(url: str, **kw: Any) -> S3BlobStore:
    bucket = f"bastion-{os.getpid()}-{next(_N)}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=bucket)
    return S3BlobStore(bucket=bucket, prefix="registry", endpoint_url=url, **kw)


@pytest.fixture
def store(s3_server: str, creds: None) -> tuple[BlobStore, Callable[[str], None]]:
    blobs = _new_store(s3_server)

    def flip_last_byte(blob_id: str) -> None:  # what a writer of the bucket can do
        s3 = boto3.client("s3", endpoint_url=s3_server)
        key = f"registry/blobs/{blob_id}"
        data = bytearray(s3.get_object(Bucket=blobs.bucket, Key=key)["Body"].read())
        data[-1] ^= 0x01
        s3.put_object(Bucket=blobs.bucket, Key=key, Body=bytes(data))

    return blobs, flip_last_byte


# The conformance suite, run over this store (its `store` fixture is the one above).
_spec = importlib.util.spec_from_file_location(
    "_blob_conformance", Path(__file__).parents[1] / "conformance" / "test_blob_stores.py"
)
assert _spec is not None and _spec.loader is not None
_conformance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conformance)
for _name in dir(_conformance):
    if _name.startswith("test_"):
        globals()[f"{_name}_s3"] = getattr(_conformance, _name)


class ShortReads(io.RawIOBase):
    """A stream that hands back at most 1000 bytes per read (like a pipe or a socket)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 1000) if n >= 0 else 1000)


def test_multipart_streaming_and_ranged_reads(s3_server: str, creds: None) -> None:
    blobs = _new_store(s3_server, part_size=5 << 20)
    data = os.urandom((11 << 20) + 12345)  # three parts
    blob_id = blobs.put(ShortReads(data))  # type: ignore[arg-type]
    s3 = boto3.client("s3", endpoint_url=s3_server)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=blobs.bucket).get("Contents", [])]
    assert keys == [f"registry/blobs/{blob_id}"]  # the temporary is gone
    assert not s3.list_multipart_uploads(Bucket=blobs.bucket).get("Uploads")
    with blobs.open(blob_id) as fh:
        fh.seek(7 << 20)
        assert fh.read(100) == data[7 << 20 : (7 << 20) + 100]
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == data[-10:]
        fh.seek(0)
        gets: list[tuple[int, int]] = []
        get_range = blobs._get_range
        blobs._get_range = lambda key, a, b: gets.append((a, b)) or get_range(key, a, b)  # type: ignore[method-assign]
        assert fh.read() == data
    assert len(gets) <= 3  # a whole read is a few part-sized GETs, not one per 8 KiB (1,400 here)


def test_errors_name_no_credentials(s3_server: str, creds: None) -> None:
    blobs = S3BlobStore(bucket="no-such-bucket", endpoint_url=s3_server)
    with pytest.raises(ServiceError) as info:
        blobs.put(io.BytesIO(b"x"))
    assert "NoSuchBucket" in str(info.value)
    assert SECRET not in str(info.value) and "bastion-test-access-key" not in str(info.value)
