"""Tables of the store, access control and the registry, registered on the shared ``Base.metadata``.

Rows that record history are append-only: versions, files, wrapped keys (the current wrap of a version is its
newest row), annotations, audit entries and tree heads are inserted and never updated. The signed manifest is
the truth about a version; its rows here are cross-checked against it on every pull and verify.
"""

from __future__ import annotations

import sqlalchemy as sa

from bastion.store.db import Base

_TS = sa.DateTime(timezone=True)
metadata = Base.metadata

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

# A version number is reserved (and committed) before encryption, because the number is bound into the
# ciphertext as associated data. A reservation is not a version: a crash leaves a gap, never a partial
# version.
version_reservations = sa.Table(
    "version_reservations",
    metadata,
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("reserved_at", _TS, nullable=False),
    sa.Column("reserved_by", sa.String(64), nullable=False),
)

versions = sa.Table(
    "artifact_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("classification", sa.String(64), nullable=True),
    sa.Column("tags_json", sa.Text, nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("manifest", sa.LargeBinary, nullable=False),  # canonical JSON, the signed truth
    sa.Column("manifest_digest", sa.String(64), nullable=False),
    sa.Column("manifest_signature", sa.LargeBinary, nullable=False),  # Ed25519 over the manifest
    sa.Column("bundle", sa.LargeBinary, nullable=False),  # model-signing signature (sigstore bundle JSON)
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.UniqueConstraint("artifact_id", "version", name="uq_artifact_version"),
)

files = sa.Table(
    "artifact_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("artifact_versions.id"), nullable=False, index=True),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("blob", sa.String(64), nullable=False),
    sa.UniqueConstraint("version_id", "path", name="uq_version_path"),
)

wrapped_keys = sa.Table(
    "wrapped_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("artifact_versions.id"), nullable=False, index=True),
    sa.Column("env", sa.String(16), nullable=False, index=True),
    sa.Column("kek_version", sa.Integer, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # WrappedKey.to_json()
    sa.Column("reason", sa.String(16), nullable=False),  # push | promote | rotate
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

version_annotations = sa.Table(
    "version_annotations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("artifact_versions.id"), nullable=False, index=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("data_json", sa.Text, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("disabled_at", _TS, nullable=True),
)

tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # public lookup prefix
    sa.Column("identity_id", sa.String(64), sa.ForeignKey("identities.id"), nullable=False, index=True),
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("digest", sa.LargeBinary, nullable=False),  # HMAC-SHA256(salt, secret)
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("revoked_at", _TS, nullable=True),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.String(64), sa.ForeignKey("identities.id"), nullable=False, index=True),
    sa.Column("scope", sa.String(8), nullable=False),  # "model" (a glob over artifact names) or "env"
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("revoked_at", _TS, nullable=True),
)

# HMAC seals of authorization state (bastion.crypto.seal): one row per sealed thing, replaced when it changes.
seals = sa.Table(
    "sealed_state",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("mac", sa.LargeBinary(32), nullable=False),
)

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),  # canonical JSON of the entry
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)

tree_heads = sa.Table(
    "tree_heads",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("timestamp", sa.String(40), nullable=False),
    sa.Column(
        "frontier", sa.LargeBinary, nullable=False
    ),  # cache of perfect-subtree roots for O(log n) appends
    sa.Column("signature", sa.LargeBinary, nullable=False),
)

__all__ = [
    "artifacts",
    "audit_entries",
    "files",
    "grants",
    "identities",
    "seals",
    "tokens",
    "tree_heads",
    "version_annotations",
    "version_reservations",
    "versions",
    "wrapped_keys",
]
