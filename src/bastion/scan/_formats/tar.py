"""tar archives (and the legacy torch tar): every member ``tarfile.extractfile`` can read is walked."""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

from bastion.scan._formats.common import path_traversal
from bastion.scan._formats.pickle import PICKLE
from bastion.scan._formats.torch_legacy import LEGACY_TAR, scan_tar_records
from bastion.scan._io import Malformed, Source, SourceFile
from bastion.scan._model import Severity
from bastion.scan.interface import Walk


def is_tar(head: bytes) -> bool:
    """A ustar header, or an old-style header whose checksum is right (what ``tarfile`` accepts)."""
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:
        stored = int(head[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    return stored == computed and head[0] != 0


class TarHandler:
    name = "tar"

    def matches(self, head: bytes, src: Source) -> bool:
        return is_tar(head)

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        add = walk.adder(member)
        try:
            tf = tarfile.open(fileobj=SourceFile(src), mode="r:")  # noqa: SIM115 - closed below
        except tarfile.TarError as exc:
            raise Malformed(f"invalid tar archive ({exc})") from exc
        members: list[tarfile.TarInfo] = []
        with tf:
            while True:
                try:
                    info = tf.next()
                except tarfile.TarError as exc:
                    raise Malformed(f"corrupt tar header ({exc})") from exc
                if info is None:
                    break
                members.append(info)
                if len(members) > walk.config.max_archive_members:
                    raise Malformed("tar has more members than max_archive_members")
        # torch.load reads a tar holding storages, tensors and pickle as its legacy format (sys_info optional)
        legacy = {_legacy_name(m.name) for m in members} >= LEGACY_TAR
        seen: set[str] = set()
        for info in members:
            child = f"{member}!{info.name}" if member else info.name
            if info.name in seen and not info.isdir():
                add("archive-duplicate-name", Severity.high, f"tar holds {info.name!r} more than once")
            seen.add(info.name)
            if path_traversal(info.name):
                add("archive-path-traversal", Severity.high, f"tar member name {info.name[:120]!r} escapes")
            if info.issym() or info.islnk():
                target = info.linkname
                if path_traversal(target) or ".." in Path(info.name).parent.joinpath(target).parts:
                    add("archive-link-escape", Severity.high, f"tar link {info.name!r} -> {target[:120]!r}")
                if legacy and _legacy_name(info.name) in LEGACY_TAR:
                    # torch's tar.extract/extractfile follow it to other bytes (or to a file on the disk)
                    add(
                        "torch-legacy-link",
                        Severity.high,
                        f"legacy torch tar member {info.name!r} is a link to {target[:120]!r}",
                    )
                continue
            if info.ischr() or info.isblk() or info.isfifo():
                add("archive-special-file", Severity.medium, f"tar member {info.name!r} is a device or FIFO")
                continue
            if info.isdir() or not (info.isreg() or info.type not in tarfile.SUPPORTED_TYPES):
                continue  # tarfile.extractfile also reads members with unknown type flags: scan those
            if info.sparse:
                walk.error(child, "sparse tar member cannot be analysed")
                continue
            view = src.window(info.offset_data, info.size)
            name = _legacy_name(info.name)
            if legacy and name in LEGACY_TAR:
                try:
                    if name == "pickle":  # torch unpickles it whatever its first bytes look like
                        walk.note(child, PICKLE.scan(walk, view, child, depth + 1))
                    else:
                        scan_tar_records(walk, view, name, child)
                        walk.note(child, f"torch-legacy-{name}")
                except Malformed as exc:
                    walk.error(child, str(exc))
                continue
            walk.scan(view, child, depth + 1)
        return "torch-legacy-tar" if legacy else "tar"


def _legacy_name(name: str) -> str:
    """A member name as ``tar.extract``/``getmember`` may match it (``./storages``, ``storages/``)."""
    return posixpath.normpath(name.rstrip("/")) if name else name


TAR = TarHandler()

__all__ = ["TAR", "TarHandler", "is_tar"]
