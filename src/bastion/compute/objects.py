"""Datasets on object stores: ``s3://bucket/prefix`` (and any URL an installed fsspec filesystem serves).

``s3://`` goes through pyarrow's ``S3FileSystem`` wrapped as an fsspec filesystem
(``fsspec.implementations.arrow.ArrowFSWrapper``), so no s3fs/aiobotocore is needed (s3fs 2026.9 would move
botocore off the version boto3 and moto were installed with). The endpoint comes from ``AWS_ENDPOINT_URL_S3``
or ``AWS_ENDPOINT_URL`` (the AWS SDKs' standard variables, which pyarrow 26 does not read itself), the
credentials from the AWS SDK's default chain (environment, shared files, instance or container role):
bastion never reads, logs or puts them in a task; each worker finds its own. Other schemes (``gs://``,
``az://``, ``abfs://``, ``memory://``) go through ``fsspec.url_to_fs`` when their package (gcsfs, adlfs) is
installed.

A worker stages its partition in a private temporary directory (download, run the local code on it, upload
the output), so digests, protected bytes and reports are the local engine's on the same bytes. Disk per
worker: one input partition and its output; memory: what the local code uses.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput, NotFound, ServiceError

_URL = re.compile(r"^([a-z][a-z0-9+.-]+)://(.+)$")
# pathlib turns "s3://b/k" into "s3:/b/k"; these schemes are repaired when a CLI Path argument holds one.
SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss", "memory")


def as_url(location: str | Path) -> str | None:
    """``location`` as an object-store URL, or None for a local path (``file://`` is local)."""
    text = str(location)
    if isinstance(location, Path):
        m = re.match(r"^([a-z][a-z0-9+.-]+):/([^/].*)$", text)
        if m and m.group(1) in SCHEMES:
            text = f"{m.group(1)}://{m.group(2)}"
    m = _URL.match(text)
    if m is None or m.group(1) == "file":
        return None
    return text.rstrip("/")


@functools.lru_cache(maxsize=8)
def _s3(endpoint: str | None, region: str | None) -> Any:
    from fsspec.implementations.arrow import ArrowFSWrapper
    from pyarrow import fs

    kw: dict[str, Any] = {}
    if endpoint:
        kw["endpoint_override"] = endpoint
    if region:
        kw["region"] = region
    try:
        return ArrowFSWrapper(fs.S3FileSystem(**kw))
    except (OSError, ValueError) as exc:  # the message may name the endpoint, never a credential
        raise ServiceError(
            "could not open the S3 filesystem (check AWS_ENDPOINT_URL and the region)"
        ) from exc


def filesystem(url: str) -> tuple[Any, str]:
    """An fsspec filesystem for ``url`` and the path inside it (``bucket/prefix`` for S3)."""
    m = _URL.match(url)
    if m is None:
        raise InvalidInput(f"not an object-store URL: {url}")
    scheme, rest = m.group(1), m.group(2).rstrip("/")
    if scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3(endpoint, region), rest
    try:
        import fsspec

        fs, path = fsspec.url_to_fs(url)
    except ImportError as exc:
        raise DependencyMissing(
            f"{scheme}:// needs its fsspec filesystem package",
            hint=f"install the fsspec package for {scheme}",
        ) from exc
    except ValueError as exc:
        raise InvalidInput(f"unknown object-store scheme {scheme!r}") from exc
    return fs, str(path).rstrip("/")


def _op(what: str, url: str, exc: BaseException) -> ServiceError:
    return ServiceError(f"object store: {what} {url} failed ({type(exc).__name__})")


def list_objects(url: str) -> tuple[bool, list[str]]:
    """(is the URL one object, the relative paths under it, sorted; hidden and ``_`` names skipped)."""
    fs, base = filesystem(url)
    try:
        if fs.isfile(base):
            return True, [base.rsplit("/", 1)[-1]]
        found = fs.find(base, detail=False)
    except OSError as exc:
        raise _op("listing", url, exc) from exc
    out = []
    for full in found:
        rel = str(full)[len(base) + 1 :]
        if rel and not any(part.startswith((".", "_")) for part in rel.split("/")):
            out.append(rel)
    if not found:
        raise NotFound(f"no such dataset: {url}")
    return False, sorted(out)


def _local_name(relpath: str) -> str:
    """The staged copy's file name: the object's own (suffixes matter to readers), never a path trick."""
    name = relpath.rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") and "\x00" not in name else "object"


def _object(url: str, relpath: str) -> tuple[Any, str]:
    fs, base = filesystem(url)
    if base.rsplit("/", 1)[-1] == relpath and fs.isfile(base):
        return fs, base
    return fs, f"{base}/{relpath}"


@contextmanager
def local_input(root: str, relpath: str) -> Iterator[Path]:
    """The partition ``relpath`` of ``root`` as a local file (a private temporary copy for a URL)."""
    url = as_url(root)
    if url is None:
        base = Path(root)
        yield base / relpath if base.is_dir() else base
        return
    fs, key = _object(url, relpath)
    with tempfile.TemporaryDirectory(prefix="bastion-part-") as tmp:
        local = Path(tmp) / _local_name(relpath)
        try:
            fs.get_file(key, str(local))
        except OSError as exc:
            raise _op("reading", f"{url}/{relpath}", exc) from exc
        yield local


@contextmanager
def local_output(root: str, relpath: str) -> Iterator[Path]:
    """Where to write ``root/relpath``: the path itself, or a temporary file uploaded when the block ends."""
    url = as_url(root)
    if url is None:
        dst = Path(root) / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        yield dst
        return
    fs, base = filesystem(url)
    with tempfile.TemporaryDirectory(prefix="bastion-out-") as tmp:
        local = Path(tmp) / _local_name(relpath)
        yield local
        try:
            fs.put_file(str(local), f"{base}/{relpath}")
        except OSError as exc:
            raise _op("writing", f"{url}/{relpath}", exc) from exc


def read_bytes(root: str, relpath: str) -> bytes:
    """``root/relpath``'s bytes (OSError when absent or unreadable, local or remote)."""
    url = as_url(root)
    if url is None:
        return (Path(root) / relpath).read_bytes()
    fs, base = filesystem(url)
    try:
        return bytes(fs.cat_file(f"{base}/{relpath}"))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OSError(f"reading {relpath} failed") from exc


def write_bytes(root: str, relpath: str, data: bytes) -> None:
    """Write ``root/relpath`` whole (a local file atomically; an object in one PUT)."""
    url = as_url(root)
    if url is None:
        from bastion.files import atomic_write

        dst = Path(root) / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dst, data)
        return
    fs, base = filesystem(url)
    try:
        fs.pipe_file(f"{base}/{relpath}", data)
    except OSError as exc:
        raise _op("writing", f"{url}/{relpath}", exc) from exc


def sha256(root: str, relpath: str) -> str:
    """``"sha256:<hex>"`` of ``root/relpath``, streamed (OSError when absent)."""
    h = hashlib.sha256()
    url = as_url(root)
    if url is None:
        with (Path(root) / relpath).open("rb") as fh:
            shutil.copyfileobj(fh, _Hash(h))
    else:
        fs, base = filesystem(url)
        with fs.open(f"{base}/{relpath}", "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


class _Hash:
    def __init__(self, h: Any) -> None:
        self._h = h

    def write(self, b: bytes) -> int:
        self._h.update(b)
        return len(b)


def is_empty(root: str) -> bool:
    """True when nothing exists at or under ``root``."""
    url = as_url(root)
    if url is None:
        p = Path(root)
        return not p.exists() or (p.is_dir() and not any(p.iterdir()))
    fs, base = filesystem(url)
    try:
        return not fs.exists(base) or not fs.find(base, detail=False)
    except OSError as exc:
        raise _op("listing", url, exc) from exc


def lineage_location(location: str) -> tuple[str, str]:
    """OpenLineage (namespace, name): ``("file", path)`` or ``("s3://bucket", "prefix")``."""
    url = as_url(location)
    if url is None:
        return "file", location
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key or "/"


__all__ = [
    "SCHEMES",
    "as_url",
    "filesystem",
    "is_empty",
    "lineage_location",
    "list_objects",
    "local_input",
    "local_output",
    "read_bytes",
    "sha256",
    "write_bytes",
]
