"""File helpers every layer shares (layer 1, beside ``errors`` and ``config``): one of each, used everywhere.

- :func:`atomic_write` — replace a file with bytes so readers see the old or the new file, never a mix
  (temporary file beside the target, ``fchmod``, ``fsync``, ``rename``, directory ``fsync``);
- :func:`atomic_output` — the same for writers that need a *path* (pyarrow, pandas, a streaming encoder);
- :func:`locked` — an exclusive advisory lock around a read-modify-write across processes;
- :func:`read_regular_file` — read a small regular file safely (no FIFO hang, no planted link, a size cap);
- :func:`fsync_dir` — make a rename in a directory durable;
- :func:`prepare_out_dir` — check (or create, 0700) the new or empty directory a pull writes into.

Content-addressed stores (:class:`bastion.store.blobs.FileBlobStore`) name their file only after writing it
and create-exclusive writes (``bastion.vault._private.write_private``) never replace anything: those are
different jobs and keep their own code.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bastion.errors import Conflict, IntegrityError, InvalidInput

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """``fsync`` a directory, so that a rename or a new entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o600) -> Path:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8) so that readers see either the old or the
    new file, never a mix, and a crash leaves one of the two. The file gets ``mode`` (default 0600) before any
    byte is written. Returns the path."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, mode: int = 0o600) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (mode ``mode``); when the block succeeds the file is fsynced
    and renamed onto ``path``, when it fails the temporary is deleted and ``path`` is untouched.

    A target that is a directory, or whose directory does not exist, is refused (InvalidInput).
    """
    target = Path(path)
    if target.is_dir():
        raise InvalidInput(f"output {target} is a directory")
    if not target.parent.is_dir():
        raise InvalidInput(f"output directory {target.parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<path>.lock`` (serialises read-modify-write across processes)."""
    lock_path = Path(f"{path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_regular_file(path: str | os.PathLike[str], *, limit: int, follow_symlinks: bool = False) -> bytes:
    """The bytes of ``path``: a regular file of at most ``limit`` bytes, checked on the open descriptor
    (``O_NONBLOCK``: a FIFO does not hang the open). FileNotFoundError when it is missing; IntegrityError
    (one line, the file name only) when it is a link (without ``follow_symlinks``), not a regular file, too
    large or unreadable. ``follow_symlinks`` is for user-named files such as Kubernetes secret mounts."""
    name = Path(path).name
    flags = _READ_FLAGS if follow_symlinks else _READ_FLAGS | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symbolic link; EACCES, ENXIO (a socket)...
        raise IntegrityError(f"{name} is not a readable regular file") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"{name} is not a regular file")
        if st.st_size > limit:
            raise IntegrityError(f"{name} is too large (over {limit} bytes)")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:  # it grew while we read
                raise IntegrityError(f"{name} is too large (over {limit} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise IntegrityError(f"{name} could not be read") from exc
    finally:
        os.close(fd)


def prepare_out_dir(target: Path) -> bool:
    """Check (or create, mode 0700) the directory a pull writes into; returns whether it was created.

    It must not be a symbolic link (dangling or not) and must be empty; any OS error is one clear line.
    """
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InvalidInput(f"cannot use {target} as the output directory ({exc.strerror})") from exc
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise Conflict(f"{target} is a symbolic link: give a new or empty directory")
        if not stat.S_ISDIR(st.st_mode):
            raise Conflict(f"{target} exists and is not an empty directory")
        try:
            empty = not os.listdir(target)
        except OSError as exc:
            raise InvalidInput(f"cannot use {target} as the output directory ({exc.strerror})") from exc
        if not empty:
            raise Conflict(f"{target} exists and is not an empty directory")
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.mkdir(target, 0o700)
    except FileExistsError as exc:
        raise Conflict(f"{target} appeared while pulling: give a new or empty directory") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot create the output directory {target} ({exc.strerror})") from exc
    return True


__all__ = [
    "atomic_output",
    "atomic_write",
    "fsync_dir",
    "locked",
    "prepare_out_dir",
    "read_regular_file",
]
