"""The private copy ``safe_load`` scans and then loads: the check and the use read the same bytes.

The file is read once, through one descriptor, into memory nobody else can write:

* zip archives (torch checkpoints, ``.npz``, ``.keras``, ``.skops``) into private anonymous memory; a torch
  checkpoint's tensors are then views of that memory (no second copy, see :mod:`bastion.scan._torchload`),
  and a loader that needs a path gets a ``memfd`` written from the same memory;
* everything else into a ``memfd`` (a private temporary file where that does not exist), whose path the
  loaders open.

A file that changes size while it is read is refused (the copy would not be the file that was opened).

Not done, measured: transparent huge pages for the copy (``MADV_HUGEPAGE``) cut its CPU time about fourfold
when the pages are warm, but on the reference VM a huge page freed for more than a second is handed back to
the host (free-page reporting), and faulting it in again made the copy four to five times *slower* than
4 KiB pages (no compaction stalls: ``compact_stall`` stayed 0).
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from bastion.errors import InvalidInput

_ZIP = b"PK\x03\x04"
_CHUNK = 256 << 20


class Snapshot:
    """A private copy of a file: ``size`` bytes, readable through :meth:`file`; :attr:`buffer` is the
    anonymous memory holding them (or None), :meth:`path` a path to the same bytes."""

    def __init__(self, size: int, *, buffer: mmap.mmap | None = None, path: str | None = None) -> None:
        self.size = size
        self.buffer = buffer
        self._path = path
        self._fds: list[int] = []
        self._files: list[IO[bytes]] = []

    def file(self) -> Any:
        """A seekable binary file over the private bytes (the anonymous memory itself, or the copy's path)."""
        if self.buffer is not None:
            self.buffer.seek(0)
            return self.buffer
        fh = open(self.path(), "rb")  # noqa: SIM115 - closed with the snapshot
        self._files.append(fh)
        return fh

    def path(self) -> str:
        """A path to the private bytes (for loaders that open a name), written from the memory on first
        use."""
        if self._path is None:
            if self.buffer is None:
                raise InvalidInput("snapshot without bytes")
            fd = _memfd()
            if fd is None:
                raise InvalidInput("this platform has no private in-memory files for a path-based loader")
            self._fds.append(fd)
            view = memoryview(self.buffer)
            try:
                done = 0
                while done < self.size:
                    done += os.write(fd, view[done : done + _CHUNK])
            finally:
                view.release()
            self._path = f"/proc/self/fd/{fd}"
        return self._path

    def close(self) -> None:
        for fh in self._files:
            fh.close()
        for fd in self._fds:
            os.close(fd)
        # never mmap.close() the memory: tensors loaded as its views hold a reference to the mmap object (not
        # a buffer export), so closing would unmap their data; it is unmapped when the last reference goes
        self.buffer = None


def _memfd() -> int | None:
    create = getattr(os, "memfd_create", None)
    return None if create is None else int(create("bastion-load", os.MFD_CLOEXEC))  # type: ignore[attr-defined]


def _read_anonymous(fd: int, size: int) -> mmap.mmap:
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # type: ignore[attr-defined]
    view = memoryview(buf)
    done = 0
    try:
        while done < size:
            n = os.preadv(fd, [view[done : done + _CHUNK]], done)  # type: ignore[attr-defined]
            if n == 0:
                break
            done += n
    finally:
        view.release()
    if done != size or os.pread(fd, 1, size):
        buf.close()
        raise InvalidInput("the file changed size while it was being read")
    return buf


def _copy_to_memfd(src: IO[bytes], fd: int, size: int) -> int:
    copied = 0
    while copied < size:
        n = os.sendfile(fd, src.fileno(), copied, size - copied)
        if n == 0:
            break
        copied += n
    return copied


@contextmanager
def snapshot(source: Path) -> Iterator[Snapshot]:
    """The private copy of ``source`` for one scan-then-load, released on exit."""
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        anonymous = hasattr(mmap, "MAP_ANONYMOUS") and hasattr(os, "preadv")
        if anonymous and size > 0 and os.pread(src.fileno(), 4, 0) == _ZIP:
            snap = Snapshot(size, buffer=_read_anonymous(src.fileno(), size))
            try:
                yield snap
            finally:
                snap.close()
            return
        fd = _memfd()
        if fd is not None:
            snap = Snapshot(0)
            snap._fds.append(fd)
            try:
                snap.size = _copy_to_memfd(src, fd, size)
                snap._path = f"/proc/self/fd/{fd}"
                yield snap
            finally:
                snap.close()
            return
        with tempfile.TemporaryDirectory(prefix="bastion-load-") as tmp:
            private = Path(tmp) / "artifact"
            with open(private, "wb") as out:
                shutil.copyfileobj(src, out, 16 << 20)
            snap = Snapshot(private.stat().st_size, path=str(private))
            try:
                yield snap
            finally:
                snap.close()


__all__ = ["Snapshot", "snapshot"]
