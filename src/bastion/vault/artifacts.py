"""The artifact registry service: push / pull / verify / read_range / materialize / show / list / annotate /
promote of encrypted, signed, immutable versions, for one identity.

Every method checks the caller's permission (deny by default) and writes one audit-log entry; a failure other
than a denial is logged as ``error`` (or ``denied`` for a finding) and re-raised. Push is
:class:`~bastion.vault._pipeline.PushPipeline`; reads go through :class:`~bastion.vault._records.Records`,
which trusts nothing in the database that the signatures and seals do not cover. Pull moves its staging
directory's files into place only when everything verified.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bastion.access import allowed
from bastion.config import ENVIRONMENTS
from bastion.crypto.aead import RangeRead, read_range
from bastion.errors import AccessDenied, InvalidInput, NotFound, ServiceError
from bastion.store.auditlog import canonical_json
from bastion.store.db import utcnow, write_transaction
from bastion.store.tables import artifacts, version_annotations, versions, wrapped_keys
from bastion.vault._context import VaultContext
from bastion.vault._gc import DEFAULT_MIN_AGE_S, collect
from bastion.vault._pipeline import PushPipeline
from bastion.vault._private import claim, prepare_out_dir, private_workdir, write_private
from bastion.vault._pull_stream import PullStream
from bastion.vault._records import Records, version_query
from bastion.vault._seals import check_pointers, check_version, reseal_pointers
from bastion.vault._source import Source
from bastion.vault.manifest import RESERVED_NAMES, SIGNATURE_FILE, dek_context, file_ad, public_key_path
from bastion.vault.refs import (
    KINDS,
    Annotation,
    ArtifactRef,
    ArtifactVersion,
    BlobCollection,
    check_metadata,
    check_name,
    check_tags,
)

# Which permission (besides reading the version) an annotation namespace needs.
ANNOTATION_PERMISSIONS: Mapping[str, str] = {
    "audit": "audit:run",
    "privacy": "privacy:train",
    "watermark": "watermark:embed",
    "data": "data:protect",
    "governance": "audit:run",
}
_DEFAULT_ANNOTATION_PERMISSION = "registry:push"
# Written only by the vault itself (the scan result is the signed push record): no caller may annotate them.
RESERVED_ANNOTATION_NAMESPACES = frozenset({"scan"})
MAX_ANNOTATION_BYTES = 64 << 10  # one note, as canonical JSON (a result, not a payload)
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class ArtifactRegistry:
    """Versions of models and datasets (``vault.registry``); the :class:`~bastion.vault.Vault` methods of the
    same names call these."""

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx
        self.records = Records(ctx)
        self.pipeline = PushPipeline(ctx, self.records)

    # --- push ----------------------------------------------------------------------------------------------

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
        """Sign, encrypt and store ``path`` (a file or a directory) as the next version of ``name``.

        Each file is read once; the inspectors then judge the *stored* bytes (the ones signed and later
        pulled), and the version becomes visible only if they accept it (else its blobs are deleted).
        """
        ctx = self.ctx
        check_name(name)
        env = env or ctx.settings.default_env
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        if env not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {env!r} (one of {', '.join(ENVIRONMENTS)})")
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in (tags or {}).items()):
            raise InvalidInput("tags: keys and values must be strings")  # never coerced ({"a": {...}})
        tags = dict(tags or {})
        check_tags(tags)
        meta = dict(metadata or {})
        check_metadata(meta)
        try:
            canonical_json(meta)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("metadata must be JSON-serialisable") from exc
        ctx.check("registry:push", model=name, env=env)
        if allow_unsafe and ctx.identity.role != "admin":
            ctx.log("registry:push", name, "denied", reason="allow_unsafe needs admin", env=env)
            raise AccessDenied(f"{ctx.identity.name} ({ctx.identity.role}) may not push with allow_unsafe")
        with ctx.logged_failure("registry:push", name):
            source = Source(Path(path), reserved=RESERVED_NAMES)
            inspectors = self.pipeline.inspectors_for(name, allow_unsafe=allow_unsafe)
            try:
                with private_workdir(ctx.settings.home) as tmp:
                    version = self.pipeline.push_source(
                        source,
                        tmp=tmp,
                        inspectors=inspectors,
                        name=name,
                        kind=kind,
                        env=env,
                        classification=classification,
                        tags=tags,
                        meta=meta,
                        allow_unsafe=allow_unsafe,
                    )
                    return self.show(f"{name}:{version}", _log=False)
            except OSError as exc:  # disk full, an unreadable file, …: one line, nothing committed
                raise ServiceError(f"push of {name} failed: {exc.strerror or exc}") from exc

    # --- pull / verify / read_range / materialize ----------------------------------------------------------

    def pull(self, ref: str | ArtifactRef, *, out: str | os.PathLike[str]) -> ArtifactVersion:
        """Verify and decrypt a version into directory ``out`` (which must not exist or be empty).

        The plaintext is staged in ``out/.bastion-pull-<random>/`` (0700) and moved into ``out`` only once
        every file verified, so nothing unverified is ever visible and no plaintext lands outside ``out``
        (a killed pull's staging directory is removed by the next command that opens the project).
        ``OUT.pub.pem`` (the manifest public key) is written beside ``out`` from a private temporary.
        """
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        target = Path(out).absolute()
        with ctx.logged_failure("registry:pull", str(ref)):
            created = prepare_out_dir(target)
            try:
                row, manifest = records.load_verified(ref, "registry:pull")
                dek = records.unwrap(row)
                stage = target / f".bastion-pull-{secrets.token_hex(8)}"
                with claim(ctx.settings.home, stage, kind="pull"):
                    os.mkdir(stage, 0o700)
                    try:
                        records.decrypt_all(row, manifest, dek, stage)
                        write_private(stage / SIGNATURE_FILE, bytes(row.bundle))
                        pub_tmp = stage / ".pub.pem"
                        write_private(pub_tmp, ctx.signer.manifest_public_key_pem().encode("ascii"))
                        for entry in sorted(os.listdir(stage)):
                            if entry != pub_tmp.name:
                                os.rename(stage / entry, target / entry)
                        # Beside the directory (inside it, upstream model_signing would count it as a file).
                        os.replace(pub_tmp, public_key_path(target))
                    except OSError as exc:  # disk full, a directory planted at OUT.pub.pem, …: one line
                        raise InvalidInput(
                            f"cannot write the pulled files into {target} ({exc.strerror})"
                        ) from exc
                    finally:
                        shutil.rmtree(stage, ignore_errors=True)
            except BaseException:
                if created:
                    shutil.rmtree(target, ignore_errors=True)
                raise
        ctx.log("registry:pull", f"{row.name}:{row.version}", env=row.env)
        return records.record(row, records.file_rows_for(row))

    def pull_stream(self, ref: str | ArtifactRef) -> PullStream:
        """Pull without touching the disk: every check of :meth:`pull` before the first byte, then the
        plaintext segment by segment, each authenticated before it is handed out and each file's signed
        digest compared at its end (see :mod:`bastion.vault._pull_stream`)."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        with ctx.logged_failure("registry:pull", str(ref)):
            row, manifest = records.load_verified(ref, "registry:pull")
            dek = records.unwrap(row)
            file_rows = records.file_rows_for(row)
            signed = {str(f["path"]) for f in manifest["files"]}
            blobs = {f.path: str(f.blob) for f in file_rows if f.path in signed}
        return PullStream(
            ctx=ctx,
            records=records,
            row=row,
            manifest=manifest,
            dek=dek,
            blobs=blobs,
            version=records.record(row, file_rows),
        )

    def verify(self, ref: str | ArtifactRef) -> ArtifactVersion:
        """Check signatures, rows, the wrapped key, every blob and every plaintext digest; writes nothing."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        with ctx.logged_failure("registry:verify", str(ref)):
            row, manifest = records.load_verified(ref, "registry:read")
            dek = records.unwrap(row)
            records.decrypt_all(row, manifest, dek, None)
        ctx.log("registry:verify", f"{row.name}:{row.version}", env=row.env)
        return records.record(row, records.file_rows_for(row))

    def read_range(self, ref: str | ArtifactRef, *, path: str, offset: int, length: int) -> RangeRead:
        """Decrypt only the segments of one file that ``[offset, offset+length)`` touches (authenticated)."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        with ctx.logged_failure("registry:read-range", str(ref)):
            row, manifest = records.load_verified(ref, "registry:pull")
            if path not in {f["path"] for f in manifest["files"]}:
                raise NotFound(f"{row.name}:{row.version} has no file {path!r}")
            dek = records.unwrap(row)
            ad = file_ad(row, manifest, path)
            with records.open_blob(row, records.blob_for(row, path)) as src:
                result = read_range(key=dek, src=src, associated_data=ad, offset=offset, length=length)
        ctx.log("registry:read-range", f"{row.name}:{row.version}", path=path, offset=offset, length=length)
        return result

    @contextmanager
    def materialize(self, ref: str | ArtifactRef) -> Iterator[Path]:
        """Yield a private temporary directory holding the verified plaintext; deleted on exit."""
        with private_workdir(self.ctx.settings.home) as parent:
            self.pull(ref, out=parent / "artifact")
            yield parent / "artifact"

    # --- metadata ------------------------------------------------------------------------------------------

    def show(self, ref: str | ArtifactRef, *, _log: bool = True) -> ArtifactVersion:
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        with ctx.logged_failure("registry:show", str(ref)):
            ctx.check("registry:read", model=ref.name)
            with ctx.engine.connect() as conn:
                row = records.resolve(conn, ref)
                file_rows = records.file_rows(conn, row.id)
                notes = records.annotations(conn, row.id)
                check_version(conn, ctx.sealer, row)
            ctx.check_found("registry:read", model=ref.name, env=row.env)
            records.verify_record(row, file_rows)
        if _log:
            ctx.log("registry:show", f"{row.name}:{row.version}", env=row.env)
        return records.record(row, file_rows, notes)

    def list(self, kind: str | None = None) -> builtins.list[ArtifactVersion]:
        """Every version this identity may read (newest first per artifact)."""
        ctx, records = self.ctx, self.records
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        ctx.check("registry:read")
        q = version_query().order_by(artifacts.c.name, versions.c.version.desc())
        if kind is not None:
            q = q.where(artifacts.c.kind == kind)
        out = []
        with ctx.engine.connect() as conn:
            for row in conn.execute(q):
                if allowed(ctx.identity, "registry:read", model=row.name, env=row.env):
                    check_pointers(conn, ctx.sealer, row.name)
                    check_version(conn, ctx.sealer, row)
                    out.append(records.record(row, records.file_rows(conn, row.id)))
        ctx.log("registry:list", kind or "*", count=len(out))
        return out

    def annotations(self, ref: str | ArtifactRef, *, namespace: str | None = None) -> tuple[Annotation, ...]:
        notes = self.show(ref, _log=False).annotations
        return tuple(a for a in notes if namespace is None or a.namespace == namespace)

    def annotate(self, ref: str | ArtifactRef, *, namespace: str, data: Mapping[str, Any]) -> Annotation:
        """Append a result (audit report, ε spent, watermark commitment, …) to a version."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        if not namespace or len(namespace) > 64 or not set(namespace) <= _NAMESPACE_CHARS:
            raise InvalidInput("annotation namespace: 1-64 lowercase letters, digits, '-', '_' or '.'")
        try:
            data_json = json.dumps(dict(data), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("annotation data must be a JSON object") from exc
        if len(data_json.encode("utf-8")) > MAX_ANNOTATION_BYTES:
            raise InvalidInput(f"annotation data larger than {MAX_ANNOTATION_BYTES} bytes")
        if namespace.split(".")[0] in RESERVED_ANNOTATION_NAMESPACES:
            ctx.log("registry:annotate", str(ref), "denied", reason=f"namespace {namespace} is reserved")
            raise AccessDenied(
                f"annotation namespace {namespace!r} is reserved to the vault "
                "(the scan result is the push record)"
            )
        permission = ANNOTATION_PERMISSIONS.get(namespace.split(".")[0], _DEFAULT_ANNOTATION_PERMISSION)
        with ctx.logged_failure("registry:annotate", str(ref)):
            ctx.check("registry:read", model=ref.name)
            with ctx.engine.connect() as conn:
                row = records.resolve(conn, ref)
                check_version(conn, ctx.sealer, row)
            ctx.check_found("registry:read", model=ref.name, env=row.env)
            ctx.check_found(permission, model=ref.name, env=row.env)
            now = utcnow()
            with write_transaction(ctx.engine) as conn:
                check_version(conn, ctx.sealer, row)  # under the write lock: no annotation slipped in
                conn.execute(
                    sa.insert(version_annotations).values(
                        version_id=row.id,
                        namespace=namespace,
                        data_json=data_json,
                        created_at=now,
                        created_by=ctx.identity.name,
                    )
                )
                records.reseal_committed(conn, row.id)
        ctx.log(
            "registry:annotate",
            f"{row.name}:{row.version}",
            namespace=namespace,
            data_sha256=hashlib.sha256(data_json.encode()).hexdigest(),
        )
        return Annotation(
            namespace=namespace,
            data=json.loads(data_json),
            created_at=now.isoformat(),
            created_by=ctx.identity.name,
        )

    # --- promote -------------------------------------------------------------------------------------------

    def promote(self, ref: str | ArtifactRef, *, to: str) -> ArtifactVersion:
        """Move a version to a later environment by rewrapping its DEK under that environment's KEK."""
        ctx, records = self.ctx, self.records
        ref = ArtifactRef.parse(ref)
        if to not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {to!r} (one of {', '.join(ENVIRONMENTS)})")
        with ctx.logged_failure("registry:promote", str(ref)):
            ctx.check("registry:promote", model=ref.name, env=to)
            row, _ = records.load_verified(ref, "registry:read")
            if ENVIRONMENTS.index(to) <= ENVIRONMENTS.index(row.env):
                raise InvalidInput(f"{row.name}:{row.version} is in {row.env}: promotion only moves forward")
            dek = records.unwrap(row)
            wrapped = ctx.keys.wrap(env=to, dek=dek, context=dek_context(row.name, int(row.version)))
            with write_transaction(ctx.engine) as conn:
                check_pointers(conn, ctx.sealer, row.name)
                conn.execute(
                    sa.insert(wrapped_keys).values(
                        version_id=row.id,
                        env=to,
                        kek_version=wrapped.kek_version,
                        wrapped=wrapped.to_json().encode(),
                        reason="promote",
                        created_at=utcnow(),
                        created_by=ctx.identity.name,
                    )
                )
                reseal_pointers(conn, ctx.sealer, row.name)
        ctx.log("registry:promote", f"{row.name}:{row.version}", source=row.env, to=to)
        return self.show(f"{row.name}:{row.version}", _log=False)

    # --- orphan blobs --------------------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = True, min_age_s: float = DEFAULT_MIN_AGE_S) -> BlobCollection:
        """List (``dry_run``, the default) or delete blobs no version refers to, and temporaries of killed
        pushes, older than ``min_age_s`` (admin only; logged either way)."""
        ctx = self.ctx
        if ctx.identity.role != "admin":
            ctx.log("registry:gc", "-", "denied", reason="admin only", dry_run=dry_run)
            raise AccessDenied(
                f"{ctx.identity.name} ({ctx.identity.role}) may not collect blobs (admin only)"
            )
        with ctx.logged_failure("registry:gc", "-"):
            found = collect(blobs=ctx.blobs, engine=ctx.engine, dry_run=dry_run, min_age_s=min_age_s)
        ctx.log(
            "registry:gc",
            "-",
            dry_run=dry_run,
            orphans=len(found.orphans),
            bytes=found.bytes,
            temporaries=found.temporaries,
            recent=found.recent,
            min_age_s=min_age_s,
        )
        return found


__all__ = ["ANNOTATION_PERMISSIONS", "RESERVED_ANNOTATION_NAMESPACES", "ArtifactRegistry"]
