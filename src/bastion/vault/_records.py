"""Reading versions back: rows resolved and checked against their seals and the signed manifest, DEKs
unwrapped, blobs decrypted with every plaintext digest compared.

Nothing in the database is trusted that the signatures and seals do not cover: :meth:`Records.load_verified`
resolves a reference (pointer seals checked), checks the version's seal and cross-checks every row against the
signed manifest and the model-signing bundle before any caller uses the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bastion.crypto.hazmat import decrypt_stream_to
from bastion.crypto.interface import WrappedKey
from bastion.errors import AccessDenied, CryptoError, IntegrityError, InvalidInput, NotFound
from bastion.store.tables import artifacts, files, version_annotations, versions, wrapped_keys
from bastion.vault._context import VaultContext
from bastion.vault._io import INLINE_BELOW, HashingSink
from bastion.vault._seals import (
    check_pointers,
    check_version,
    current_wraps,
    reseal_pointers,
    reseal_version,
)
from bastion.vault.manifest import (
    MANIFEST_FORMATS,
    bundle_resources,
    dek_context,
    file_ad,
    verify_bundle_signature,
)
from bastion.vault.refs import Annotation, ArtifactRef, ArtifactVersion, FileEntry, check_name


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC (SQLite hands timezone-aware columns back naive)."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def version_query() -> Any:
    """Versions joined with their artifact and current wrap (environment, wrapped DEK, KEK version)."""
    latest = current_wraps()
    return (
        sa.select(
            versions,
            artifacts.c.name,
            artifacts.c.kind,
            wrapped_keys.c.env,
            wrapped_keys.c.wrapped,
            wrapped_keys.c.kek_version,
        )
        .join(artifacts, artifacts.c.id == versions.c.artifact_id)
        .join(latest, latest.c.version_id == versions.c.id)
        .join(wrapped_keys, wrapped_keys.c.id == latest.c.wid)
    )


class Records:
    """Version rows for one :class:`VaultContext`: resolve, check, record, unwrap, decrypt."""

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx

    def resolve(self, conn: Connection, ref: ArtifactRef) -> Any:
        if conn.execute(sa.select(artifacts.c.id).where(artifacts.c.name == ref.name)).first() is None:
            raise NotFound(f"no artifact named {ref.name!r}")
        check_pointers(conn, self.ctx.sealer, ref.name)  # NAME and NAME@ENV cannot be rolled back unnoticed
        q = version_query().where(artifacts.c.name == ref.name)
        if ref.version is not None:
            q = q.where(versions.c.version == ref.version)
        if ref.env is not None:
            q = q.where(wrapped_keys.c.env == ref.env)
        row = conn.execute(q.order_by(versions.c.version.desc()).limit(1)).first()
        if row is None:
            if ref.version is not None:
                raise NotFound(f"{ref.name} has no version {ref.version}")
            if ref.env is not None:
                raise NotFound(f"{ref.name} has no version in {ref.env}")
            raise NotFound(f"{ref.name} has no committed version")
        return row

    @staticmethod
    def file_rows(conn: Connection, version_id: int) -> list[Any]:
        return list(
            conn.execute(sa.select(files).where(files.c.version_id == version_id).order_by(files.c.path))
        )

    def file_rows_for(self, row: Any) -> list[Any]:
        with self.ctx.engine.connect() as conn:
            return self.file_rows(conn, row.id)

    @staticmethod
    def annotations(conn: Connection, version_id: int) -> tuple[Annotation, ...]:
        rows = conn.execute(
            sa.select(version_annotations)
            .where(version_annotations.c.version_id == version_id)
            .order_by(version_annotations.c.id)
        )
        return tuple(
            Annotation(
                namespace=r.namespace,
                data=json.loads(r.data_json),
                created_at=iso(r.created_at),
                created_by=r.created_by,
            )
            for r in rows
        )

    @staticmethod
    def record(row: Any, file_rows: Sequence[Any], notes: tuple[Annotation, ...] = ()) -> ArtifactVersion:
        return ArtifactVersion(
            name=check_name(row.name),
            version=int(row.version),
            kind=row.kind,
            env=row.env,
            manifest_digest=row.manifest_digest,
            size=int(row.size),
            files=tuple(FileEntry(path=f.path, sha256=f.sha256, size=int(f.size)) for f in file_rows),
            created_at=iso(row.created_at),
            created_by=row.created_by,
            classification=row.classification,
            tags=json.loads(row.tags_json),
            metadata=json.loads(row.metadata_json),
            annotations=notes,
        )

    def verify_record(self, row: Any, file_rows: Sequence[Any]) -> dict[str, Any]:
        """Cross-check the rows of a version against its signed manifest; returns the manifest."""
        signer = self.ctx.signer
        manifest_bytes = bytes(row.manifest)
        try:
            signer.verify(manifest_bytes, bytes(row.manifest_signature))
        except IntegrityError:
            raise
        except Exception as exc:  # any verifier failure is a bad signature
            raise IntegrityError(f"{row.name}:{row.version}: manifest signature does not verify") from exc
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError as exc:
            raise IntegrityError(f"{row.name}:{row.version}: manifest is not valid JSON") from exc
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        tags = json.loads(row.tags_json)
        meta = json.loads(row.metadata_json)
        if manifest.get("format") not in MANIFEST_FORMATS:
            raise IntegrityError(f"{row.name}:{row.version}: unknown manifest format")
        expected = {
            "name": row.name,
            "version": int(row.version),
            "kind": row.kind,
            "classification": row.classification,
            "tags": tags,
            "metadata": meta,
        }
        if row.manifest_digest != digest or any(manifest.get(k) != v for k, v in expected.items()):
            raise IntegrityError(f"{row.name}:{row.version}: database row does not match the signed manifest")
        if hashlib.sha256(bytes(row.bundle)).hexdigest() != manifest.get("bundle_sha256"):
            raise IntegrityError(
                f"{row.name}:{row.version}: model-signing signature does not match the manifest"
            )
        verify_bundle_signature(bytes(row.bundle), signer.manifest_public_key_pem())
        signed_files = {f["path"]: (f["sha256"], f["size"]) for f in manifest["files"]}
        if bundle_resources(bytes(row.bundle)) != {p: d for p, (d, _) in signed_files.items()}:
            raise IntegrityError(f"{row.name}:{row.version}: model-signing digests do not match the manifest")
        rows = {f.path: (f.sha256, int(f.size)) for f in file_rows}
        if rows != signed_files or int(row.size) != sum(s for _, s in signed_files.values()):
            raise IntegrityError(f"{row.name}:{row.version}: file rows do not match the signed manifest")
        return manifest  # type: ignore[no-any-return]

    def load_verified(self, ref: ArtifactRef, permission: str) -> tuple[Any, dict[str, Any]]:
        """Check ``permission`` (by name, then by the version's environment) and return the verified row."""
        self.ctx.check(permission, model=ref.name)
        with self.ctx.engine.connect() as conn:
            row = self.resolve(conn, ref)
            file_rows = self.file_rows(conn, row.id)
            check_version(conn, self.ctx.sealer, row)
        self.ctx.check_found(permission, model=ref.name, env=row.env)
        if permission == "registry:pull":
            self.refuse_quarantined(row)
        return row, self.verify_record(row, file_rows)

    def refuse_quarantined(self, row: Any) -> None:
        """Refuse a pull of a version that ``bastion respond`` quarantined (by name or ``name:version``).

        The quarantine lives in the home's signed response state (:mod:`bastion.store.response_state`),
        verified with the home's log key before it is believed; a state that fails its signature refuses
        every pull, as it refuses every request at the gateway; so does a state file that is missing or
        older than the latest state the audit log records (deleting or rolling it back lifts nothing)."""
        from bastion.store.response_state import LoggedState, load_current, state_path

        path = state_path(self.ctx.settings.home)
        logged = getattr(self, "_logged_state", None)
        if logged is None:
            logged = self._logged_state = LoggedState(self.ctx.engine, self.ctx.signer)
        latest = logged.latest()
        if latest is None and not path.exists():
            return
        state = load_current(path, self.ctx.signer, latest)
        for key in (str(row.name), f"{row.name}:{row.version}"):
            if key in state.quarantined_models:
                self.ctx.log("registry:pull", f"{row.name}:{row.version}", "denied", reason="quarantined")
                raise AccessDenied(
                    f"{row.name}:{row.version} is quarantined by an incident response "
                    f"(bastion respond --undo quarantine-model:{key} lifts it)"
                )

    def unwrap(self, row: Any) -> bytes:
        try:
            wrapped = WrappedKey.from_json(bytes(row.wrapped))
            if wrapped.env != row.env or wrapped.kek_version != row.kek_version:
                raise IntegrityError("wrapped key metadata mismatch")
            return self.ctx.keys.unwrap(wrapped, context=dek_context(row.name, int(row.version)))
        except (CryptoError, IntegrityError, NotFound, ValueError) as exc:
            raise IntegrityError(f"{row.name}:{row.version}: the wrapped data key does not verify") from exc

    def decrypt_all(self, row: Any, manifest: Mapping[str, Any], dek: bytes, out: Path | None) -> None:
        """Decrypt every file (into ``out`` or nowhere), checking each plaintext digest in the same pass.

        Each authenticated segment is written by this thread while a helper hashes the previous ones; the
        digest and size are compared with the signed manifest before the caller makes anything visible.
        """
        for f in manifest["files"]:
            path = str(f["path"])
            blob = self.blob_for(row, path)
            ad = file_ad(row, manifest, path)
            target: Path | None = None
            if out is not None:
                target = out / path
                if out.resolve() not in target.resolve().parents:
                    raise IntegrityError(f"{row.name}:{row.version}: unsafe path in manifest")
                for parent in reversed(target.relative_to(out).parents):
                    d = out / parent
                    if str(parent) != "." and not d.is_dir():
                        os.mkdir(d, 0o700)
            fd = (
                os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                if target is not None
                else None
            )
            try:
                sink = HashingSink(fd, inline=int(f["size"]) < INLINE_BELOW)
                try:
                    with self.open_blob(row, blob) as src:
                        decrypt_stream_to(key=dek, src=src, sink=sink, associated_data=ad)
                except BaseException:
                    sink.abort()
                    raise
                digest = sink.close()
                if fd is not None:
                    os.fsync(fd)
            finally:
                if fd is not None:
                    os.close(fd)
            if digest != f["sha256"] or sink.size != int(f["size"]):
                raise IntegrityError(f"{row.name}:{row.version}: {path} does not match its signed digest")

    def blob_for(self, row: Any, path: str) -> str:
        with self.ctx.engine.connect() as conn:
            blob = conn.execute(
                sa.select(files.c.blob).where(files.c.version_id == row.id, files.c.path == path)
            ).scalar_one_or_none()
        if blob is None:
            raise IntegrityError(f"{row.name}:{row.version}: {path} has no blob")
        return str(blob)

    @contextmanager
    def open_blob(self, row: Any, blob: str) -> Iterator[Any]:
        try:
            handle = self.ctx.blobs.open(blob)
        except (NotFound, InvalidInput) as exc:
            raise IntegrityError(f"{row.name}:{row.version}: a blob is missing from the blob store") from exc
        with handle:
            yield handle

    def reseal_committed(self, conn: Connection, version_id: int) -> None:
        """Seal a version as stored (read back, so the encoding is the database's) and its name's pointers."""
        row = conn.execute(
            sa.select(versions, artifacts.c.name)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id == version_id)
        ).one()
        reseal_version(conn, self.ctx.sealer, row)
        reseal_pointers(conn, self.ctx.sealer, row.name)


__all__ = ["Records", "current_wraps", "iso", "version_query"]
