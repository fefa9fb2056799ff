"""The secure registry (layer 4): encrypted, signed, versioned artifacts with least-privilege access.

``open_vault`` / ``init_project`` return a :class:`Vault` with ``push``, ``pull``, ``verify``, ``show``,
``list``, ``promote``, ``annotate``, ``annotations``, ``materialize``, ``rotate_keys``, ``retire_key``,
``list_keys``, ``create_token`` and ``authenticate``; each checks the caller's permission and writes one
audit-log entry.
"""

from __future__ import annotations

from bastion.vault.project import init_project, open_vault
from bastion.vault.refs import Annotation, ArtifactRef, ArtifactVersion, FileEntry, KeyRotation
from bastion.vault.registry import SIGNATURE_FILE, Vault, public_key_path

__all__ = [
    "SIGNATURE_FILE",
    "Annotation",
    "ArtifactRef",
    "ArtifactVersion",
    "FileEntry",
    "KeyRotation",
    "Vault",
    "init_project",
    "open_vault",
    "public_key_path",
]
