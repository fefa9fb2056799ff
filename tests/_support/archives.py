"""Archives built in memory for the scanner and server tests."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping


def tar_bytes(
    members: Mapping[str, bytes] | Iterable[tuple[str, bytes]], *, format: int = tarfile.DEFAULT_FORMAT
) -> bytes:
    """An uncompressed tar of regular files ``name -> data``, in order (``format``: a ``tarfile`` format)."""
    items = members.items() if isinstance(members, Mapping) else members
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tf:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
