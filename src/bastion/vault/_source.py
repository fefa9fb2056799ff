"""What push reads: the regular files of a file or directory, each opened once without following links.

The pushed directory may be writable by someone else while push runs. So no path is trusted twice: every
directory is opened relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``, every file with
``O_NOFOLLOW`` and checked to be a regular file on the descriptor itself, and the bytes read from that one
descriptor are the bytes hashed, encrypted, scanned and signed. A symbolic link, a device, a FIFO or a socket
anywhere under the source is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bastion.errors import InvalidInput, NotFound

GIT_PATHS = (".git", ".github", ".gitignore", ".gitattributes")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _open_at(dir_fd: int | None, name: str, flags: int, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise InvalidInput(f"{shown} changed while it was being pushed") from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink, or a file where a directory was
            raise InvalidInput(f"symbolic links and special files are not pushed: {shown}") from exc
        raise InvalidInput(f"cannot read {shown} ({exc.strerror})") from exc


class Source:
    """A file or directory to push. ``files`` lists relative POSIX paths; :meth:`open` opens one safely."""

    def __init__(self, path: Path, *, reserved: frozenset[str]) -> None:
        self.path = path
        try:
            st = os.lstat(path)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file or directory: {path}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInput(f"symbolic links are not pushed: {path}")
        self.is_dir = stat.S_ISDIR(st.st_mode)
        if not self.is_dir and not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"not a regular file or directory: {path}")
        if self.is_dir:
            fd = _open_at(None, str(path), _DIR_FLAGS, str(path))
            try:
                self.files = tuple(sorted(self._walk(fd, "")))
            finally:
                os.close(fd)
        else:
            self.files = (path.name,)
        # model-signing's verifier skips git paths, so a signed version must not hold any
        git = sorted({f.split("/", 1)[0] for f in self.files} & set(GIT_PATHS))
        if git:
            raise InvalidInput(f"refusing to push {path}: it holds git paths ({', '.join(git)})")
        for name in reserved:
            if name in self.files:
                raise InvalidInput(f"{name} is reserved for the signature written on pull")
        if not self.files:
            raise InvalidInput("nothing to push: the artifact has no files")

    def _walk(self, dir_fd: int, prefix: str) -> Iterator[str]:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = prefix + e.name
            if e.is_symlink():
                raise InvalidInput(f"symbolic links are not pushed: {self.path / rel}")
            if e.is_dir(follow_symlinks=False):
                sub = _open_at(dir_fd, e.name, _DIR_FLAGS, str(self.path / rel))
                try:
                    yield from self._walk(sub, rel + "/")
                finally:
                    os.close(sub)
            elif e.is_file(follow_symlinks=False):
                yield rel
            else:
                raise InvalidInput(f"not a regular file or directory: {self.path / rel}")

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        """Open file ``rel`` for reading: no link followed on the way, a regular file checked on the fd."""
        shown = str(self.path / rel) if self.is_dir else str(self.path)
        fds: list[int] = []
        try:
            if self.is_dir:
                parts = rel.split("/")
                fds.append(_open_at(None, str(self.path), _DIR_FLAGS, shown))
                for part in parts[:-1]:
                    fds.append(_open_at(fds[-1], part, _DIR_FLAGS, shown))
                fd = _open_at(fds[-1], parts[-1], _FILE_FLAGS, shown)
            else:
                fd = _open_at(None, str(self.path), _FILE_FLAGS, shown)
        finally:
            for d in fds:
                os.close(d)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInput(f"not a regular file: {shown}")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        with open(fd, "rb", buffering=0) as fh:
            yield fh


__all__ = ["GIT_PATHS", "Source"]
