"""The secure registry (layer 4): encrypted, signed, versioned artifacts with least-privilege access.

``open_vault`` / ``init_project`` return a :class:`Vault` with ``push``, ``pull``, ``verify``, ``show``,
``list``, ``promote``, ``annotate``, ``annotations``, ``materialize``, ``rotate_keys``, ``retire_key``,
``list_keys``, ``create_token``, ``authenticate``, ``gc_blobs`` and the ``log_*`` calls; each checks the
caller's permission and writes one audit-log entry. The facade delegates to services with one job each, usable
directly (a server is a thin layer over them): ``vault.registry`` (versions), ``vault.key_admin`` (KEKs),
``vault.log`` (audit log and seals) and ``vault.tokens`` (API tokens); see :mod:`bastion.vault.registry`.
"""

from __future__ import annotations

from bastion.vault._io import INLINE_BELOW, HashingSink
from bastion.vault.project import init_project, open_vault
from bastion.vault.refs import Annotation, ArtifactRef, ArtifactVersion, FileEntry, KeyRotation
from bastion.vault.registry import SIGNATURE_FILE, PullStream, StreamedFile, Vault, public_key_path

__all__ = [
    "INLINE_BELOW",
    "SIGNATURE_FILE",
    "Annotation",
    "ArtifactRef",
    "ArtifactVersion",
    "FileEntry",
    "HashingSink",
    "KeyRotation",
    "PullStream",
    "StreamedFile",
    "Vault",
    "init_project",
    "open_vault",
    "public_key_path",
]
