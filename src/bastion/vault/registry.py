"""The registry facade: :class:`Vault`, one opened project acting for one identity.

``Vault`` keeps the public surface the CLI, the gateway, the capabilities and the server build on
(``push``, ``pull``, ``verify``, ``read_range``, ``materialize``, ``show``, ``list``, ``annotate``,
``annotations``, ``promote``, ``rotate_keys``, ``retire_key``, ``key_users``, ``list_keys``, ``create_token``,
``authenticate``, the ``log_*`` calls, ``unsealed_state``/``seal_state``, and the parts ``settings``,
``engine``, ``keys``, ``blobs``, ``audit``, ``access``, ``identity``, ``signer``) and delegates every call
to a service with one job:

- ``vault.registry`` (:class:`~bastion.vault.artifacts.ArtifactRegistry`): versions — the push pipeline,
  pull, verify, read_range, materialize, show, list, annotate, annotations, promote;
- ``vault.key_admin`` (:class:`~bastion.vault.key_admin.KeyAdmin`): KEK rotate, retire, users, list;
- ``vault.log`` (:class:`~bastion.vault.log_view.LogView`): audit-log verify, head, entries, proofs; seals;
- ``vault.tokens`` (:class:`~bastion.vault.tokens.Tokens`): API tokens create, authenticate, list, revoke.

All of them share one :class:`~bastion.vault._context.VaultContext` (the opened parts and the identity), so a
server can call the services directly and get exactly the permission checks and audit entries of local mode.
The signed formats (manifest v1/v2, AEAD associated data, the DEK-wrap context) are in
:mod:`bastion.vault.manifest`; the names below are re-exported from there for existing importers.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from sqlalchemy.engine import Engine

from bastion.access import AccessControl, Identity
from bastion.config import Settings
from bastion.crypto.aead import RangeRead
from bastion.crypto.interface import KekInfo, KeyProvider, WrapHolder
from bastion.store.auditlog import (
    AuditEntry,
    AuditLog,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
)
from bastion.store.blobs import BlobStore
from bastion.store.interface import Witness
from bastion.vault._context import INSPECTOR_GROUP, WRAP_HOLDER_GROUP, VaultContext
from bastion.vault._gc import DEFAULT_MIN_AGE_S
from bastion.vault._pull_stream import PullStream, StreamedFile
from bastion.vault.artifacts import ANNOTATION_PERMISSIONS, ArtifactRegistry
from bastion.vault.interface import Inspector
from bastion.vault.key_admin import KeyAdmin
from bastion.vault.log_view import LogView
from bastion.vault.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_FORMAT_V1,
    MANIFEST_FORMATS,
    RESERVED_NAMES,
    SIGNATURE_FILE,
    bundle_resources,
    dek_context,
    file_associated_data,
    public_key_path,
    verify_bundle_signature,
)
from bastion.vault.refs import Annotation, ArtifactRef, ArtifactVersion, BlobCollection, KeyRotation
from bastion.vault.tokens import Tokens

T = TypeVar("T")


class _Part(Generic[T]):
    """A facade attribute that reads and writes the shared context (so every service sees the same part)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Part[T]: ...

    @overload
    def __get__(self, obj: Vault, owner: type) -> T: ...

    def __get__(self, obj: Vault | None, owner: type) -> T | _Part[T]:
        if obj is None:
            return self
        return getattr(obj._ctx, self.name)  # type: ignore[no-any-return]

    def __set__(self, obj: Vault, value: T) -> None:
        setattr(obj._ctx, self.name, value)


class Vault:
    """A project's registry, opened for one identity. Build with ``open_vault`` or ``init_project``."""

    settings = _Part[Settings]()
    engine = _Part[Engine]()
    keys = _Part[KeyProvider]()
    blobs = _Part[BlobStore]()
    audit = _Part[AuditLog]()
    access = _Part[AccessControl]()
    identity = _Part[Identity]()
    signer = _Part[Any]()

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        keys: KeyProvider,
        blobs: BlobStore,
        audit: AuditLog,
        access: AccessControl,
        identity: Identity,
        signer: Any,
        inspectors: Sequence[Inspector] | None = None,
        wrap_holders: Sequence[WrapHolder] | None = None,
    ) -> None:
        self._ctx = VaultContext(
            settings=settings,
            engine=engine,
            keys=keys,
            blobs=blobs,
            audit=audit,
            access=access,
            identity=identity,
            signer=signer,
            inspectors=None if inspectors is None else list(inspectors),
            holders=None if wrap_holders is None else list(wrap_holders),
        )
        self.registry = ArtifactRegistry(self._ctx)
        self.key_admin = KeyAdmin(self._ctx, self.registry.records)
        self.log = LogView(self._ctx)
        self.tokens = Tokens(self._ctx)

    @property
    def context(self) -> VaultContext:
        """The shared context (opened parts and identity) the services act with."""
        return self._ctx

    def wrap_holders(self) -> builtins.list[WrapHolder]:
        """The holders of other KEK-wrapped secrets (given, else the installed entry points)."""
        return self._ctx.wrap_holders()

    # --- plumbing ----------------------------------------------------------------------------------------

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ctx.close()

    # --- tokens ------------------------------------------------------------------------------------------

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        """A new API token (admin only); the token string is returned once and never stored."""
        return self.tokens.create(name=name, role=role, models=models, envs=envs)

    def authenticate(self, token: str) -> Identity:
        return self.tokens.authenticate(token)

    # --- artifacts ---------------------------------------------------------------------------------------

    def push(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        kind: str = "model",
        env: str | None = None,
        classification: str | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_unsafe: bool = False,
    ) -> ArtifactVersion:
        """Sign, encrypt and store ``path`` (a file or a directory) as the next version of ``name``."""
        return self.registry.push(
            path,
            name=name,
            kind=kind,
            env=env,
            classification=classification,
            tags=tags,
            metadata=metadata,
            allow_unsafe=allow_unsafe,
        )

    def pull(self, ref: str | ArtifactRef, *, out: str | os.PathLike[str]) -> ArtifactVersion:
        """Verify and decrypt a version into directory ``out`` (which must not exist or be empty)."""
        return self.registry.pull(ref, out=out)

    def pull_stream(self, ref: str | ArtifactRef) -> PullStream:
        """Verify a version, then stream its plaintext file by file, segment by segment (nothing on disk)."""
        return self.registry.pull_stream(ref)

    def verify(self, ref: str | ArtifactRef) -> ArtifactVersion:
        """Check signatures, rows, the wrapped key, every blob and every plaintext digest; writes nothing."""
        return self.registry.verify(ref)

    def read_range(self, ref: str | ArtifactRef, *, path: str, offset: int, length: int) -> RangeRead:
        """Decrypt only the segments of one file that ``[offset, offset+length)`` touches (authenticated)."""
        return self.registry.read_range(ref, path=path, offset=offset, length=length)

    def materialize(self, ref: str | ArtifactRef) -> AbstractContextManager[Path]:
        """Yield a private temporary directory holding the verified plaintext; deleted on exit."""
        return self.registry.materialize(ref)

    def show(self, ref: str | ArtifactRef, *, _log: bool = True) -> ArtifactVersion:
        return self.registry.show(ref, _log=_log)

    def list(self, kind: str | None = None) -> builtins.list[ArtifactVersion]:
        """Every version this identity may read (newest first per artifact)."""
        return self.registry.list(kind)

    def annotations(self, ref: str | ArtifactRef, *, namespace: str | None = None) -> tuple[Annotation, ...]:
        return self.registry.annotations(ref, namespace=namespace)

    def annotate(self, ref: str | ArtifactRef, *, namespace: str, data: Mapping[str, Any]) -> Annotation:
        """Append a result (audit report, ε spent, watermark commitment, …) to a version."""
        return self.registry.annotate(ref, namespace=namespace, data=data)

    def promote(self, ref: str | ArtifactRef, *, to: str) -> ArtifactVersion:
        """Move a version to a later environment by rewrapping its DEK under that environment's KEK."""
        return self.registry.promote(ref, to=to)

    def gc_blobs(self, *, dry_run: bool = True, min_age_s: float = DEFAULT_MIN_AGE_S) -> BlobCollection:
        """List (default) or delete orphan blobs older than ``min_age_s`` (admin only; logged)."""
        return self.registry.gc(dry_run=dry_run, min_age_s=min_age_s)

    # --- keys --------------------------------------------------------------------------------------------

    def rotate_keys(self, *, env: str) -> KeyRotation:
        """New KEK version for ``env``; every secret wrapped in ``env`` is rewrapped under it."""
        return self.key_admin.rotate(env=env)

    def key_users(self, *, env: str, version: int) -> dict[str, int]:
        """What still uses KEK ``env``/``version``: ``{what: count}`` (registry data keys, each holder)."""
        return self.key_admin.users(env=env, version=version)

    def retire_key(self, *, env: str, version: int) -> None:
        """Retire KEK ``version`` of ``env``; refused (naming them) while any secret still uses it."""
        self.key_admin.retire(env=env, version=version)

    def list_keys(self) -> builtins.list[KekInfo]:
        return self.key_admin.list()

    # --- the audit log and seals -------------------------------------------------------------------------

    def log_verify(
        self, *, trusted: SignedTreeHead | None = None, witnesses: Sequence[Witness] = ()
    ) -> LogVerification:
        """Recompute the audit log against its signed heads (and ``trusted``), and against the home's
        witnesses plus ``witnesses`` (named from outside the home); raises IntegrityError."""
        return self.log.verify(trusted=trusted, witnesses=witnesses)

    def log_head(self) -> SignedTreeHead:
        return self.log.head()

    def unsealed_state(self) -> builtins.list[str]:
        """Identities, artifact names and ``NAME:VERSION`` whose seal is missing or does not match."""
        return self.log.unsealed_state()

    def seal_state(self) -> builtins.list[str]:
        """Seal every identity, pointer set and version as it is now (owner only: the migration step)."""
        return self.log.seal_state()

    def log_public_key_pem(self) -> str:
        """The Ed25519 key that signs tree heads (public: what witnesses pin)."""
        return self.log.public_key_pem()

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> builtins.list[AuditEntry]:
        return self.log.entries(start=start, limit=limit)

    def log_prove(self, index: int) -> InclusionProof:
        """Inclusion proof of entry ``index`` in the latest signed head (checked before it is returned)."""
        return self.log.prove(index)

    def log_consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two signed heads (both signatures and the proof checked)."""
        return self.log.consistency(old_size, new_size)


__all__ = [
    "ANNOTATION_PERMISSIONS",
    "INSPECTOR_GROUP",
    "MANIFEST_FORMAT",
    "MANIFEST_FORMATS",
    "MANIFEST_FORMAT_V1",
    "RESERVED_NAMES",
    "SIGNATURE_FILE",
    "WRAP_HOLDER_GROUP",
    "PullStream",
    "StreamedFile",
    "Vault",
    "bundle_resources",
    "dek_context",
    "file_associated_data",
    "public_key_path",
    "verify_bundle_signature",
]
