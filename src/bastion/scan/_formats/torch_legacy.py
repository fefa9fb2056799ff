"""PyTorch's legacy formats: the pickle sequence (``_use_new_zipfile_serialization=False``) and the older tar.

Both are read here as ``torch.load``'s legacy path reads them: after the magic number and protocol version
come the sys-info and main pickles, then the storage keys and each storage's raw bytes (sized by the element
size of the storage type the main pickle named); the tar form keeps pickled records in its ``storages`` and
``tensors`` members. Every pickle on the way is analysed; raw bytes are skipped only by sizes those
pickles declared.
"""

from __future__ import annotations

from typing import Any

from bastion.scan._allowlist import STORAGE_ELEMENT_SIZE
from bastion.scan._io import Malformed, Reader, Source
from bastion.scan._pickle import Global, analyze_pickle, plain
from bastion.scan.interface import Walk

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_TORCH_PROTOCOL = 1001
#: the members torch's legacy tar loader reads (``sys_info`` is written but never read, so not required)
LEGACY_TAR = frozenset({"pickle", "storages", "tensors"})


def scan_legacy_sequence(walk: Walk, r: Reader, member: str) -> str:
    """The rest of a legacy file whose first pickle (already read from ``r``) was the magic number."""

    def next_pickle() -> Any:
        return analyze_pickle(r, config=walk.config, issues=walk.issues, member=member)

    if next_pickle().value != LEGACY_TORCH_PROTOCOL:
        raise Malformed("legacy torch file with an unknown protocol version")
    next_pickle()  # sys_info
    main = next_pickle()
    keys = plain(next_pickle().value)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise Malformed("legacy torch storage key list is not a list of strings")
    sizes: dict[str, int] = {}
    for pid in main.persistent:
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], Global):
            size = STORAGE_ELEMENT_SIZE.get(pid[1].name)
            if size is None:
                raise Malformed(f"legacy torch storage type {pid[1].full} unknown")
            sizes[str(pid[2])] = size
    for key in keys:
        if key not in sizes:
            raise Malformed(f"legacy torch storage {key!r} has no type")
        numel = int.from_bytes(r.read(8), "little", signed=True)
        if numel < 0:
            raise Malformed("legacy torch storage with a negative size")
        r.skip(numel * sizes[key])
    if r.remaining():
        walk.note(member, f"{r.remaining()} trailing bytes after the storages")
    return "torch-legacy"


def scan_tar_records(walk: Walk, src: Source, name: str, member: str) -> None:
    """The ``storages``/``tensors`` member of a legacy torch tar, read exactly as ``torch.load`` reads it.

    ``storages``: a count, then per storage a pickled ``(key, location, storage_type)`` record, an int64
    element count and the raw bytes, then one more pickle (the storage views). ``tensors``: a count, then
    per tensor a pickled record and its int32 rank, 4 padding bytes, sizes, strides and offset. Every pickle
    is analysed; bytes left after what torch reads are an error (issue 19, finding F1).
    """
    r = src.reader()

    def next_value() -> Any:
        return plain(analyze_pickle(r, config=walk.config, issues=walk.issues, member=member).value)

    count = next_value()
    if not isinstance(count, int) or count < 0 or count > walk.config.max_archive_members:
        raise Malformed(f"legacy torch tar '{name}' record count invalid")
    for _ in range(count):
        record = next_value()  # torch unpacks it: any 3-item tuple or list
        if not isinstance(record, tuple | list) or len(record) != 3:
            raise Malformed(f"legacy torch tar '{name}' record invalid")
        if name == "storages":
            storage_type = record[2]
            size = STORAGE_ELEMENT_SIZE.get(storage_type.name) if isinstance(storage_type, Global) else None
            if size is None:
                raise Malformed("legacy torch tar storage type unknown")
            numel = int.from_bytes(r.read(8), "little", signed=True)
            if numel < 0:
                raise Malformed("legacy torch tar storage with a negative size")
            r.skip(numel * size)
        else:
            ndim = int.from_bytes(r.read(4), "little", signed=True)
            if not 0 <= ndim <= 64:
                raise Malformed("legacy torch tar tensor rank invalid")
            r.skip(4 + 16 * ndim + 8)
    if name == "storages":
        views = next_value()  # the storage views torch unpickles after the records
        if not isinstance(views, list | tuple) or not all(
            isinstance(v, tuple | list) and len(v) == 4 for v in views
        ):
            raise Malformed("legacy torch tar storage views invalid")
    if r.remaining():
        raise Malformed(f"legacy torch tar '{name}': {r.remaining()} bytes after the records torch reads")


__all__ = ["LEGACY_TAR", "LEGACY_TORCH_MAGIC", "scan_legacy_sequence", "scan_tar_records"]
