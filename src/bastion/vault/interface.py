"""The vault's plug-in seam for artifact inspection (the scanner plugs in here; the vault never imports it).

Push encrypts first and inspects afterwards, so an inspector judges exactly the bytes that were stored and
signed (issue 12 item 1). An inspector is found through the entry-point group ``bastion.inspectors`` (or
passed to :func:`bastion.vault.open_vault`) and is either

* a :class:`StoredInspector`: an object with ``inspect_stored(artifact)``, which reads the stored version
  through :class:`StoredArtifact` (seekable, authenticated range reads: only the segments it touches are
  decrypted, nothing is written to disk); or
* a plain callable ``inspector(path)``: it gets a private directory (mode 0700, deleted afterwards) holding
  the stored version decrypted and checked against its signed digests. This costs one more decryption of the
  whole artifact; a scanner should offer ``inspect_stored``.

Either raises :class:`~bastion.errors.UnsafeArtifact` to refuse the version, which is then deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class StoredArtifact(Protocol):
    """A version as stored (not yet visible): its files, readable through the vault's range reads."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def files(self) -> tuple[str, ...]:
        """Relative POSIX paths, sorted."""
        ...

    def size(self, path: str) -> int:
        """The plaintext size of ``path`` (authenticated)."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A seekable, read-only binary file over the plaintext of ``path``; close it when done.

        Every byte it returns authenticated (AES-GCM segment by segment). Reading is cheap where a parser
        reads headers and directories, and costs one decryption per segment otherwise.
        """
        ...


@runtime_checkable
class StoredInspector(Protocol):
    """An inspector that reads the stored version itself (no plaintext copy on disk)."""

    def inspect_stored(self, artifact: StoredArtifact) -> None: ...


PathInspector = Callable[[Path], None]
Inspector = PathInspector | StoredInspector

__all__ = ["Inspector", "PathInspector", "StoredArtifact", "StoredInspector"]
