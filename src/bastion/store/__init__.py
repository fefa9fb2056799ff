"""The metadata database, the blob store and the Merkle audit log (layer 3).

``store.db`` (shared SQLAlchemy ``Base``, ``open_engine``, ``ensure_tables``), ``store.blobs`` (``BlobStore``,
``FileBlobStore``), ``store.auditlog`` (``AuditLog``), ``store.merkle`` (RFC 6962 hashing and proofs).
"""

from __future__ import annotations

from bastion.store.auditlog import AuditEntry, AuditLog, SignedTreeHead
from bastion.store.blobs import BlobStore, FileBlobStore
from bastion.store.db import Base, ensure_tables, open_engine

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Base",
    "BlobStore",
    "FileBlobStore",
    "SignedTreeHead",
    "ensure_tables",
    "open_engine",
]
