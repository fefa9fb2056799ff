"""Streaming tar, both ways, in bounded chunks: what push uploads and pull downloads.

Writing is done by hand (a PAX header per member, the bytes in ``chunk``-sized pieces, zero padding), so a
2 GiB file never sits in memory. Reading (:func:`extract_stream`) takes ``tarfile``'s stream mode ``r|`` and
accepts only regular files and directories under relative, normalised names: an absolute path, a ``..``
component, a link, a device or FIFO, a sparse member (its declared size would expand from a few bytes), a
member that would land outside the target, a duplicate name, or more bytes or members than the limits allow
is refused (InvalidInput) before anything is written for it. Files
are created with ``O_EXCL | O_NOFOLLOW`` (0600) in directories this code made (0700).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from bastion.errors import InvalidInput

BLOCK = 512
CHUNK = 1 << 20
_NAME_MAX = 4096


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


_MAX_EXTENDED_HEADER = 1 << 20


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses PAX / GNU long-name headers over 1 MiB before tarfile reads them into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        extended = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME)
        if self.type in (*extended, tarfile.GNUTYPE_LONGLINK) and self.size > _MAX_EXTENDED_HEADER:
            raise InvalidInput("tar stream: an extended header is larger than 1 MiB")
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


def _header(name: str, *, size: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o700 if directory else 0o600
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def member_header(name: str, *, size: int) -> bytes:
    """The PAX header block(s) of a regular-file member of ``size`` bytes (what :func:`bytes_member` and
    :func:`file_member` send first)."""
    return _header(name, size=size)


def padding(size: int) -> bytes:
    """The zero bytes that follow a member of ``size`` bytes (to the next 512-byte block)."""
    return b"\0" * (-size % BLOCK)


def bytes_member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, size=len(data))
    yield data
    pad = -len(data) % BLOCK
    if pad:
        yield b"\0" * pad


def file_member(
    name: str, path: Path, *, chunk: int = CHUNK, expect_size: int | None = None
) -> Iterator[bytes]:
    """One regular file as a tar member, read once from one descriptor (not following links).

    ``expect_size``: the size announced earlier (:func:`tree_listing`); a file that changed size since is
    refused rather than sent with another length.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"not a regular file: {path}")
        size = st.st_size
        if expect_size is not None and size != expect_size:
            raise InvalidInput(f"{path} changed size while it was being sent")
        yield _header(name, size=size)
        left = size
        while left:
            data = fh.read(min(chunk, left))
            if not data:
                raise InvalidInput(f"{path} shrank while it was being sent")
            left -= len(data)
            yield data
    pad = -size % BLOCK
    if pad:
        yield b"\0" * pad


def tree_listing(prefix: str, root: Path) -> list[tuple[str, Path, int]]:
    """``(prefix/<relative path>, path, size)`` of every regular file under directory ``root`` (sorted;
    links and anything but regular files refused): what :func:`tree_members` sends."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        for d in dirnames:
            if (here / d).is_symlink():
                raise InvalidInput(f"{here / d} is a symbolic link: push refuses links")
        for f in sorted(filenames):
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            path = here / f
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise InvalidInput(f"{path} is a symbolic link: push refuses links")
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInput(f"not a regular file: {path}")
            out.append((f"{prefix}/{rel}", path, st.st_size))
    return out


def listing_length(listing: Iterable[tuple[str, Path, int]]) -> int:
    """The bytes :func:`file_member` sends for each entry of a listing (headers, data, padding)."""
    return sum(len(member_header(name, size=size)) + size + (-size % BLOCK) for name, _, size in listing)


def tree_members(
    prefix: str,
    root: Path,
    *,
    chunk: int = CHUNK,
    listing: list[tuple[str, Path, int]] | None = None,
) -> Iterator[bytes]:
    """Every regular file under directory ``root`` as ``prefix/<relative path>`` (sorted; links refused).

    With ``listing`` (from :func:`tree_listing`) exactly those files at exactly those sizes are sent."""
    for name, path, size in tree_listing(prefix, root) if listing is None else listing:
        yield from file_member(name, path, chunk=chunk, expect_size=None if listing is None else size)


def end_of_archive() -> bytes:
    return b"\0" * (2 * BLOCK)


def safe_name(name: str, *, prefix: str | None = None) -> str:
    """The member's relative POSIX path (without ``prefix/``), or InvalidInput for anything that could
    escape the target directory."""
    if not name or len(name) > _NAME_MAX or "\0" in name or "\\" in name:
        raise InvalidInput("tar stream: a member has an empty, oversized or odd name")
    if name.startswith("/") or posixpath.isabs(name):
        raise InvalidInput(f"tar stream: absolute path refused: {name[:200]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput(f"tar stream: '..' refused in {name[:200]!r}")
    if not parts:
        raise InvalidInput("tar stream: a member has an empty name")
    if prefix is not None:
        if parts[0] != prefix:
            raise InvalidInput(f"tar stream: unexpected member {name[:200]!r}")
        parts = parts[1:]
    return "/".join(parts)


@dataclass(frozen=True)
class Extracted:
    files: dict[str, tuple[int, str]]  # relative path -> (size, sha256)
    meta: dict[str, bytes]  # small members outside the prefix, by name


def extract_stream(
    src: Readable,
    target: Path,
    *,
    prefix: str = "files",
    meta_names: Iterable[str] = (),
    max_bytes: int,
    max_files: int,
    max_meta_bytes: int = 4 << 20,
    on_meta: Callable[[str, bytes], None] | None = None,
    chunk: int = CHUNK,
    digests: bool = True,
) -> Extracted:
    """Extract a tar stream into the existing private directory ``target`` (see the module docstring).

    Members named in ``meta_names`` (small, at most ``max_meta_bytes``) are returned in ``meta`` and handed
    to ``on_meta`` as they arrive; every other member must live under ``prefix/``. ``digests``: SHA-256 each
    file as it is written (``files`` maps it to ``(size, hexdigest)``; the digest is ``""`` when off).
    """
    allowed_meta = set(meta_names)
    seen_meta: set[str] = set()
    files: dict[str, tuple[int, str]] = {}
    meta: dict[str, bytes] = {}
    total = 0
    made: set[str] = set()
    try:
        archive = tarfile.open(fileobj=src, mode="r|", bufsize=chunk, tarinfo=_BoundedTarInfo)  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as exc:
        raise InvalidInput("the upload is not a tar stream") from exc
    with archive:
        try:
            for member in archive:
                name = member.name
                if _sparse(member):  # its size is a claim: a few bytes would expand to that many zeros
                    raise InvalidInput(f"tar stream: {name[:200]!r} is a sparse member: refused")
                if name in allowed_meta and member.isreg():
                    if member.size > max_meta_bytes or name in meta:
                        raise InvalidInput(f"tar stream: {name} is oversized or repeated")
                    fh = archive.extractfile(member)
                    data = fh.read() if fh is not None else b""
                    meta[name] = data
                    seen_meta.add(name)
                    if on_meta is not None:
                        on_meta(name, data)
                    continue
                if seen_meta != allowed_meta:
                    raise InvalidInput(f"tar stream: {', '.join(sorted(allowed_meta))} must come first")
                rel = safe_name(name, prefix=prefix)
                if not rel:
                    if member.isdir():
                        continue
                    raise InvalidInput(f"tar stream: {prefix!r} must be a directory")
                if not (member.isreg() or member.isdir()):
                    raise InvalidInput(
                        f"tar stream: {rel[:200]!r} is a link or device: only files are accepted"
                    )
                if member.isdir():
                    _mkdirs(target, rel, made)
                    continue
                if rel in files:
                    raise InvalidInput(f"tar stream: {rel[:200]!r} appears twice")
                if len(files) >= max_files:
                    raise InvalidInput(f"tar stream: more than {max_files} files")
                total += member.size
                if total > max_bytes:
                    raise InvalidInput(f"tar stream: more than {max_bytes} bytes")
                parent, _, _ = rel.rpartition("/")
                if parent:
                    _mkdirs(target, parent, made)
                fh = archive.extractfile(member)
                if fh is None:  # pragma: no cover - isreg() members always have data
                    raise InvalidInput("tar stream: unreadable member")
                files[rel] = _write_new(target / rel, fh, member.size, chunk=chunk, digest=digests)
        except tarfile.TarError as exc:
            raise InvalidInput(f"the tar stream is malformed ({exc})") from exc
        except OSError as exc:  # a name too long for this file system, a full disk, …: one line
            raise InvalidInput(f"tar stream: cannot write a member ({exc.strerror})") from exc
    return Extracted(files=files, meta=meta)


def _sparse(member: tarfile.TarInfo) -> bool:
    """A GNU sparse member (type ``S``, or the PAX ``GNU.sparse.*`` formats 0.0, 0.1 and 1.0)."""
    pax = getattr(member, "pax_headers", None) or {}
    return (
        member.type == tarfile.GNUTYPE_SPARSE
        or member.issparse()
        or any(k.startswith("GNU.sparse.") for k in pax)
    )


def _mkdirs(target: Path, rel: str, made: set[str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub in made:
            continue
        path = target / sub
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"tar stream: {sub[:200]!r} is both a file and a directory") from None
        made.add(sub)


def _write_new(path: Path, src: BinaryIO, size: int, *, chunk: int, digest: bool) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise InvalidInput(f"tar stream: {path.name[:200]!r} appears twice") from None
    if digest:  # parse here; write and SHA-256 on two helper threads (bounded pool, one copy per byte)
        from bastion.vault import INLINE_BELOW, HashingSink

        try:
            sink = HashingSink(fd, inline=size < INLINE_BELOW)
            try:
                written = 0
                while written < size:
                    want = min(chunk, size - written)
                    buf = sink.acquire(want)
                    got = src.readinto(memoryview(buf)[:want])  # type: ignore[attr-defined]
                    if not got:
                        raise InvalidInput("tar stream: truncated")
                    sink.commit(buf, got)
                    written += got
            except BaseException:
                sink.abort()
                raise
            return written, sink.close()
        finally:
            os.close(fd)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < size:
            data = src.read(min(chunk, size - written))
            if not data:
                raise InvalidInput("tar stream: truncated")
            out.write(data)
            written += len(data)
    return written, ""


__all__ = [
    "CHUNK",
    "Extracted",
    "bytes_member",
    "end_of_archive",
    "extract_stream",
    "file_member",
    "listing_length",
    "member_header",
    "padding",
    "safe_name",
    "tree_listing",
    "tree_members",
]
