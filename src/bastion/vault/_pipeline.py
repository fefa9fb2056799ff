"""The push pipeline: reserve a number, seal each file once, inspect what was stored, sign, wrap, commit.

A version number is reserved and a fresh data key (DEK) drawn; each file is read **once**
(:mod:`bastion.vault._source`), sealed and content-addressed into the blob store (:mod:`bastion.vault._push`).
The inspectors then judge the *stored* version; a refusal deletes the blobs and releases the number. Only
then are the digests signed with OpenSSF model-signing, the bastion manifest signed with the home's Ed25519
key, the DEK wrapped by the environment's KEK, and one database transaction makes the version visible; a crash
before it leaves at most orphan blobs and a burnt version number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bastion.crypto.interface import WrappedKey, new_dek
from bastion.errors import (
    BastionError,
    Conflict,
    DependencyMissing,
    IntegrityError,
    ServiceError,
    UnsafeArtifact,
)
from bastion.store.auditlog import canonical_json
from bastion.store.blobs import FileBlobStore
from bastion.store.db import utcnow, write_transaction
from bastion.store.tables import artifacts, files, version_reservations, versions, wrapped_keys
from bastion.vault._context import VaultContext
from bastion.vault._private import private_workdir
from bastion.vault._push import (
    StoredFile,
    StoredVersion,
    encrypt_file,
    run_inspectors,
)
from bastion.vault._records import Records
from bastion.vault._source import Source
from bastion.vault.interface import Inspector
from bastion.vault.manifest import (
    MANIFEST_FORMAT,
    SIGNATURE_FILE,
    bundle_resources,
    dek_context,
    segment_associated_data,
)

logger = logging.getLogger(__name__)


class PushPipeline:
    """Turns one read source into one committed, signed, sealed version (or into nothing)."""

    def __init__(self, ctx: VaultContext, records: Records) -> None:
        self.ctx = ctx
        self.records = records

    def inspectors_for(self, name: str, *, allow_unsafe: bool) -> list[Inspector]:
        inspectors = self.ctx.inspectors_or_installed()
        if not inspectors:
            if not allow_unsafe:
                raise DependencyMissing(
                    "no artifact inspector is installed, so push refuses",
                    hint="install bastion's scanner, or push with --allow-unsafe as admin",
                )
            logger.warning("pushing %s without any artifact inspection (allow_unsafe)", name)
        return list(inspectors)

    def reserve(self, name: str, kind: str) -> tuple[int, int]:
        """``(artifact id, version)``: the next version number of ``name``, reserved for this push."""
        for _ in range(10):
            try:
                with write_transaction(self.ctx.engine) as conn:
                    art = conn.execute(sa.select(artifacts).where(artifacts.c.name == name)).first()
                    if art is None:
                        art_id = conn.execute(
                            sa.insert(artifacts).values(
                                name=name, kind=kind, created_at=utcnow(), created_by=self.ctx.identity.name
                            )
                        ).inserted_primary_key[0]  # type: ignore[index]
                    else:
                        if art.kind != kind:
                            raise Conflict(f"{name} is a {art.kind}, not a {kind}")
                        art_id = art.id
                    top = max(
                        conn.execute(
                            sa.select(sa.func.max(versions.c.version)).where(versions.c.artifact_id == art_id)
                        ).scalar()
                        or 0,
                        conn.execute(
                            sa.select(sa.func.max(version_reservations.c.version)).where(
                                version_reservations.c.artifact_id == art_id
                            )
                        ).scalar()
                        or 0,
                    )
                    conn.execute(
                        sa.insert(version_reservations).values(
                            artifact_id=art_id,
                            version=top + 1,
                            reserved_at=utcnow(),
                            reserved_by=self.ctx.identity.name,
                        )
                    )
                    return int(art_id), top + 1
            except sa.exc.IntegrityError:
                continue  # a concurrent pusher took the number: take the next one
        raise ServiceError("could not reserve a version number (too much contention)")

    def push_source(
        self,
        source: Source,
        *,
        tmp: Path,
        inspectors: Sequence[Inspector],
        name: str,
        kind: str,
        env: str,
        classification: str | None,
        tags: dict[str, str],
        meta: dict[str, Any],
        allow_unsafe: bool,
    ) -> int:
        """Store, inspect, sign and commit ``source`` as the next version of ``name``; returns the version."""
        ctx = self.ctx
        art_id, version = self.reserve(name, kind)
        dek = new_dek()
        stored: dict[str, StoredFile] = {}
        committed = False
        try:
            for rel in source.files:
                with source.open(rel) as fh:
                    stored[rel] = encrypt_file(
                        fh,
                        blobs=ctx.blobs,
                        dek=dek,
                        ad=segment_associated_data(name, version, rel),
                        tmp=tmp,
                        path=rel,
                    )
            if isinstance(ctx.blobs, FileBlobStore):
                ctx.blobs.sync(f.blob for f in stored.values())  # durable before the commit refers to them
            view = StoredVersion(
                name=name,
                version=version,
                stored=stored,
                blobs=ctx.blobs,
                dek=dek,
                ad=lambda rel: segment_associated_data(name, version, rel),
            )

            def on_finding(exc: UnsafeArtifact) -> None:
                if not allow_unsafe:
                    raise exc
                logger.warning("allow_unsafe: pushing %s despite an inspector finding: %s", name, exc)
                ctx.log("registry:push", name, "ok", overridden_finding=str(exc), allow_unsafe=True)

            run_inspectors(
                inspectors,
                view,
                workdir=lambda: private_workdir(ctx.settings.home),
                single_file=not source.is_dir,
                on_finding=on_finding,
            )
            digests = {rel: f.sha256 for rel, f in stored.items()}
            model_dir = tmp / (source.path.name or "artifact")
            os.mkdir(model_dir, 0o700)
            sig_path = tmp / SIGNATURE_FILE
            ctx.signer.sign_digests(
                directory=model_dir, digests=digests, signature_path=sig_path, files_on_disk=False
            )
            bundle = sig_path.read_bytes()
            if bundle_resources(bundle) != digests:
                raise IntegrityError("the model-signing signature does not list the digests it was given")
            entries = [{"path": rel, "sha256": f.sha256, "size": f.size} for rel, f in sorted(stored.items())]
            manifest = canonical_json(
                {
                    "format": MANIFEST_FORMAT,
                    "name": name,
                    "version": version,
                    "kind": kind,
                    "classification": classification,
                    "tags": tags,
                    "metadata": meta,
                    "files": entries,
                    "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
                }
            )
            manifest_digest = hashlib.sha256(manifest).hexdigest()
            manifest_signature = ctx.signer.sign(manifest)
            wrapped = ctx.keys.wrap(env=env, dek=dek, context=dek_context(name, version))
            self.commit_version(
                art_id=art_id,
                version=version,
                env=env,
                classification=classification,
                tags=tags,
                meta=meta,
                manifest=manifest,
                manifest_digest=manifest_digest,
                manifest_signature=manifest_signature,
                bundle=bundle,
                stored=stored,
                wrapped=wrapped,
            )
            committed = True
        finally:
            if not committed:
                for f in stored.values():  # refused or failed: the stored bytes never become a version
                    with suppress(OSError, BastionError):
                        ctx.blobs.delete(f.blob)
                # nothing under this number survives (blobs deleted, DEK never wrapped): release it
                with suppress(sa.exc.SQLAlchemyError), ctx.engine.begin() as conn:
                    conn.execute(
                        sa.delete(version_reservations).where(
                            version_reservations.c.artifact_id == art_id,
                            version_reservations.c.version == version,
                        )
                    )
        ctx.log(
            "registry:push",
            f"{name}:{version}",
            env=env,
            kind=kind,
            manifest_digest=manifest_digest,
            allow_unsafe=allow_unsafe,
        )
        return version

    def commit_version(
        self,
        *,
        art_id: int,
        version: int,
        env: str,
        classification: str | None,
        tags: dict[str, str],
        meta: dict[str, Any],
        manifest: bytes,
        manifest_digest: str,
        manifest_signature: bytes,
        bundle: bytes,
        stored: Mapping[str, StoredFile],
        wrapped: WrappedKey,
    ) -> None:
        """One transaction: the version row, its file rows, its first DEK wrap and its seals."""
        now = utcnow()
        creator = self.ctx.identity.name
        with write_transaction(self.ctx.engine) as conn:
            version_id = conn.execute(
                sa.insert(versions).values(
                    artifact_id=art_id,
                    version=version,
                    classification=classification,
                    tags_json=json.dumps(tags, sort_keys=True),
                    metadata_json=json.dumps(meta, sort_keys=True),
                    manifest=manifest,
                    manifest_digest=manifest_digest,
                    manifest_signature=manifest_signature,
                    bundle=bundle,
                    size=sum(f.size for f in stored.values()),
                    created_at=now,
                    created_by=creator,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            for rel, f in sorted(stored.items()):
                conn.execute(
                    sa.insert(files).values(
                        version_id=version_id, path=rel, sha256=f.sha256, size=f.size, blob=f.blob
                    )
                )
            conn.execute(
                sa.insert(wrapped_keys).values(
                    version_id=version_id,
                    env=env,
                    kek_version=wrapped.kek_version,
                    wrapped=wrapped.to_json().encode(),
                    reason="push",
                    created_at=now,
                    created_by=creator,
                )
            )
            self.records.reseal_committed(conn, version_id)


__all__ = ["PushPipeline"]
