"""Read a small regular file safely: never block on a FIFO or device, never follow a planted link (unless
asked, for user-named files such as Kubernetes secret mounts), never read more than a cap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bastion.errors import IntegrityError

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def read_regular_file(path: str | os.PathLike[str], *, limit: int, follow_symlinks: bool = False) -> bytes:
    """The bytes of ``path``: a regular file of at most ``limit`` bytes, checked on the open descriptor
    (``O_NONBLOCK``: a FIFO does not hang the open). FileNotFoundError when it is missing; IntegrityError
    (one line, the file name only) when it is a link (without ``follow_symlinks``), not a regular file, too
    large or unreadable."""
    name = Path(path).name
    flags = _FLAGS if follow_symlinks else _FLAGS | os.O_NOFOLLOW
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


__all__ = ["read_regular_file"]
