"""HDF5 (Keras ``.h5``): the Keras configs in the root attributes; also found after a user block."""

from __future__ import annotations

from bastion.scan._formats.keras import check_keras_config
from bastion.scan._io import Malformed, Source, SourceFile
from bastion.scan.interface import Walk

MAGIC = b"\x89HDF\r\n\x1a\n"


def superblock_after_user_block(src: Source) -> int | None:
    """Offset of an HDF5 superblock after a user block (512, 1024, 2048 … as h5py searches), or None."""
    at = 512
    while at + 8 <= src.size:
        if src.read_at(at, 8) == MAGIC:
            return at
        at *= 2
    return None


class Hdf5Handler:
    name = "hdf5"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:8] == MAGIC

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        try:
            import h5py
        except ImportError as exc:
            raise Malformed("the h5py package is needed to analyse HDF5 files (extra 'scan')") from exc
        fmt = "hdf5"
        try:
            with h5py.File(SourceFile(src), "r") as h5:
                for attr in ("model_config", "training_config"):
                    if attr in h5.attrs:
                        value = h5.attrs[attr]
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        check_keras_config(raw, walk.adder(member), what=f"HDF5 {attr}")
                        fmt = "keras-h5"
        except (OSError, KeyError, TypeError) as exc:
            raise Malformed(f"unreadable HDF5 ({type(exc).__name__})") from exc
        return fmt


HDF5 = Hdf5Handler()

__all__ = ["HDF5", "Hdf5Handler", "superblock_after_user_block"]
