"""The scanner as the registry's inspector of *stored* versions (entry point ``bastion.inspectors: scan``).

The vault encrypts first and inspects afterwards (:mod:`bastion.vault.interface`). Through
:meth:`RegistryInspector.inspect_stored` the scanner reads each stored file with the vault's authenticated
range reads (:func:`bastion.scan.scan_stream`), so no plaintext copy of the version is written to disk and
only the segments a parser touches are decrypted; calling it with a path keeps the old form
(:func:`bastion.scan.inspect_artifact`). The verdict is the same as ``inspect_artifact`` gives the files on
disk: any file that is not safe (errors included) refuses the version with one line.
"""

from __future__ import annotations

import os
from typing import Any

from bastion.errors import UnsafeArtifact
from bastion.scan import inspect_artifact, scan_stream
from bastion.scan._load import summary
from bastion.scan._model import Verdict
from bastion.scan._walk import accept_external_data


class RegistryInspector:
    """``inspector(path)`` or ``inspector.inspect_stored(artifact)``; raises UnsafeArtifact."""

    def __call__(self, path: str | os.PathLike[str]) -> None:
        inspect_artifact(path)

    def inspect_stored(self, artifact: Any) -> None:
        reports = []
        for rel in artifact.files:
            with artifact.open(rel) as fh:
                reports.append(scan_stream(fh, name=rel, size=artifact.size(rel)))
        bad = [r for r in accept_external_data(reports) if r.verdict is not Verdict.safe]
        if bad:
            more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
            raise UnsafeArtifact(f"unsafe artifact: {summary(bad[0])}{more}")


registry_inspector = RegistryInspector()

__all__ = ["RegistryInspector", "registry_inspector"]
