"""The registry: push / pull / verify / promote of encrypted, signed, immutable artifact versions.

Push (``bastion-manifest/v2``): a version number is reserved and a fresh data key (DEK) drawn; each file is
read **once**, from one descriptor opened without following links (:mod:`bastion.vault._source`), and that
read is SHA-256-hashed, sealed by the segmented AEAD with associated data ``name ‖ version ‖ path`` and
BLAKE3-addressed into the blob store (:mod:`bastion.vault._push`). The inspectors (the scanner) then judge the
*stored* version through authenticated range reads, so what they accept is exactly what is signed and later
pulled; a refusal deletes the blobs and releases the number. Only then are the digests signed with
OpenSSF model-signing, the bastion manifest (name, version, kind, files, the model-signing bundle's digest)
signed with the home's Ed25519 key, the DEK wrapped by the environment's KEK, and one database transaction
makes the version visible; a crash before it leaves at most orphan blobs and a burnt version number.
Versions written before (``bastion-manifest/v1``, whose AD also bound the manifest digest) still verify and
pull: the format is part of the signed manifest.

Pull and verify trust nothing in the database that the signatures do not cover: rows are cross-checked
against the signed manifest, every blob is authenticated segment by segment, every plaintext digest is
compared, and pull moves its staging directory's files into place only when everything verified.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import secrets
import shutil
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.access import AccessControl, Identity, allowed
from bastion.config import ENVIRONMENTS, Settings
from bastion.crypto.aead import RangeRead, decrypt_stream_to, read_range
from bastion.crypto.interface import KekInfo, KeyProvider, WrapHolder, WrappedKey, new_dek
from bastion.crypto.seal import RowSealer
from bastion.errors import (
    AccessDenied,
    BastionError,
    Conflict,
    CryptoError,
    DependencyMissing,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceError,
    UnsafeArtifact,
)
from bastion.store.auditlog import (
    AuditEntry,
    AuditLog,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
    canonical_json,
)
from bastion.store.blobs import BlobStore, FileBlobStore
from bastion.store.db import utcnow, write_transaction
from bastion.store.tables import (
    artifacts,
    files,
    version_annotations,
    version_reservations,
    versions,
    wrapped_keys,
)
from bastion.vault._io import INLINE_BELOW, HashingSink
from bastion.vault._private import claim, prepare_out_dir, private_workdir, write_private
from bastion.vault._push import (
    StoredFile,
    StoredVersion,
    encrypt_file,
    run_inspectors,
    segment_associated_data,
)
from bastion.vault._seals import (
    check_pointers,
    check_version,
    cross_check_log,
    reseal_pointers,
    reseal_version,
    seal_registry,
    unsealed_registry,
)
from bastion.vault._source import Source
from bastion.vault.interface import Inspector
from bastion.vault.refs import (
    KINDS,
    Annotation,
    ArtifactRef,
    ArtifactVersion,
    FileEntry,
    KeyRotation,
    check_metadata,
    check_name,
    check_tags,
)

logger = logging.getLogger(__name__)

# v2: one read per file, segment AD = name ‖ version ‖ path. v1 versions (AD also bound the manifest digest)
# still verify and pull: the format is inside the signed manifest, so it cannot be downgraded.
MANIFEST_FORMAT = "bastion-manifest/v2"
MANIFEST_FORMAT_V1 = "bastion-manifest/v1"
MANIFEST_FORMATS = (MANIFEST_FORMAT, MANIFEST_FORMAT_V1)
SIGNATURE_FILE = "model.sig"
RESERVED_NAMES = frozenset({SIGNATURE_FILE})
INSPECTOR_GROUP = "bastion.inspectors"
WRAP_HOLDER_GROUP = "bastion.wrap_holders"
# Which permission (besides reading the version) an annotation namespace needs.
ANNOTATION_PERMISSIONS: Mapping[str, str] = {
    "audit": "audit:run",
    "privacy": "privacy:train",
    "watermark": "watermark:embed",
    "scan": "data:scan",
    "data": "data:protect",
    "governance": "audit:run",
}
_DEFAULT_ANNOTATION_PERMISSION = "registry:push"
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC (SQLite hands timezone-aware columns back naive)."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _lp(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def file_associated_data(name: str, version: int, manifest_digest: str, path: str) -> bytes:
    """AEAD associated data of a file in a ``bastion-manifest/v1`` version (kept to read old versions)."""
    return b"bastion-file-v1" + _lp(
        name.encode(), str(version).encode(), manifest_digest.encode(), path.encode("utf-8")
    )


def public_key_path(out: Path) -> Path:
    """Where pull writes the manifest public key: ``OUT.pub.pem`` beside the pulled directory ``OUT``."""
    return out.with_name(out.name + ".pub.pem")


def dek_context(name: str, version: int) -> bytes:
    """Associated data of a DEK wrap: a wrap cannot be moved to another version."""
    return b"bastion-dek-v1" + _lp(name.encode(), str(version).encode())


def bundle_resources(bundle: bytes) -> dict[str, str]:
    """``{path: sha256}`` from a model-signing bundle's signed in-toto payload (raises IntegrityError)."""
    try:
        doc = json.loads(bundle)
        payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"], validate=True))
        resources = payload["predicate"]["resources"]
        out: dict[str, str] = {}
        for r in resources:
            if r["algorithm"] != "sha256" or not isinstance(r["name"], str):
                raise ValueError("unexpected resource")
            out[r["name"]] = str(r["digest"])
        return out
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise IntegrityError("the model-signing signature is malformed") from exc


def verify_bundle_signature(bundle: bytes, public_key_pem: str | bytes) -> None:
    """Check the ECDSA P-256 signature of a model-signing bundle's DSSE envelope (no re-hashing of files).

    DSSE v1: the signature covers PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP payload. The
    payload's per-file digests are then compared with what was decrypted, so together this is what
    ``model_signing verify`` checks, without reading the files a second time.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        ptype = str(envelope["payloadType"]).encode()
        sigs = envelope["signatures"]
        if len(sigs) != 1:
            raise ValueError("expected exactly one signature")
        signature = base64.b64decode(sigs[0]["sig"], validate=True)
        key = serialization.load_pem_public_key(
            public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        )
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an EC key")
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
        key.verify(signature, pae, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityError("the model-signing signature does not verify") from exc


def _load_inspectors() -> list[Inspector]:
    found: list[Inspector] = []
    for ep in entry_points(group=INSPECTOR_GROUP):
        try:
            found.append(ep.load())
        except (ImportError, AttributeError) as exc:
            logger.warning("artifact inspector %s could not be loaded: %s", ep.name, exc)
    return found


def _load_wrap_holders(settings: Settings, engine: Engine) -> list[WrapHolder]:
    """Every installed holder of KEK-wrapped secrets (entry-point group ``bastion.wrap_holders``).

    A holder that cannot be loaded is an error, not a warning: rotating or retiring keys without it would
    strand its secrets.
    """
    found: list[WrapHolder] = []
    for ep in entry_points(group=WRAP_HOLDER_GROUP):
        try:
            found.append(ep.load()(settings, engine))
        except (ImportError, AttributeError) as exc:
            raise DependencyMissing(f"key holder {ep.name} could not be loaded ({exc})") from exc
    return found


class Vault:
    """A project's registry, opened for one identity. Build with ``open_vault`` or ``init_project``."""

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
        self.settings = settings
        self.engine = engine
        self.keys = keys
        self.blobs = blobs
        self.audit = audit
        self.access = access
        self.identity = identity
        self.signer = signer
        self._inspectors = None if inspectors is None else list(inspectors)
        self._wrap_holders = None if wrap_holders is None else list(wrap_holders)

    def wrap_holders(self) -> builtins.list[WrapHolder]:
        """The holders of other KEK-wrapped secrets (given, else the installed entry points)."""
        if self._wrap_holders is None:
            self._wrap_holders = _load_wrap_holders(self.settings, self.engine)
        return list(self._wrap_holders)

    # --- plumbing ----------------------------------------------------------------------------------------

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.audit.close()
        self.engine.dispose()

    def _check(self, permission: str, *, model: str | None = None, env: str | None = None) -> None:
        self.access.check(self.identity, permission, model=model, env=env)

    def _log(self, action: str, target: str, outcome: str = "ok", **details: Any) -> None:
        self.audit.append(
            actor=self.identity.name, action=action, target=target, outcome=outcome, details=details
        )

    @contextmanager
    def _logged_failure(self, action: str, target: str) -> Iterator[None]:
        """Audit-log a failure (other than a denial, which the check logged) and re-raise it."""
        try:
            yield
        except AccessDenied:
            raise
        except BastionError as exc:
            outcome = "denied" if exc.exit_code == 1 else "error"
            with suppress(BastionError):
                self._log(action, target, outcome, error=type(exc).__name__)
            raise

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        """A new API token (admin only); the token string is returned once and never stored."""
        return self.access.create_token(name=name, role=role, models=models, envs=envs)

    def authenticate(self, token: str) -> Identity:
        return self.access.authenticate(token)

    # --- reading records ---------------------------------------------------------------------------------

    def _current_wraps(self) -> Any:
        latest = (
            sa.select(wrapped_keys.c.version_id, sa.func.max(wrapped_keys.c.id).label("wid"))
            .group_by(wrapped_keys.c.version_id)
            .subquery()
        )
        return latest

    def _query(self) -> Any:
        latest = self._current_wraps()
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

    @functools.cached_property
    def _sealer(self) -> RowSealer:
        return self.signer.row_sealer()

    def _resolve(self, conn: Connection, ref: ArtifactRef) -> Any:
        if conn.execute(sa.select(artifacts.c.id).where(artifacts.c.name == ref.name)).first() is None:
            raise NotFound(f"no artifact named {ref.name!r}")
        check_pointers(conn, self._sealer, ref.name)  # NAME and NAME@ENV cannot be rolled back unnoticed
        q = self._query().where(artifacts.c.name == ref.name)
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

    def _file_rows(self, conn: Connection, version_id: int) -> list[Any]:
        return list(
            conn.execute(sa.select(files).where(files.c.version_id == version_id).order_by(files.c.path))
        )

    def _annotations(self, conn: Connection, version_id: int) -> tuple[Annotation, ...]:
        rows = conn.execute(
            sa.select(version_annotations)
            .where(version_annotations.c.version_id == version_id)
            .order_by(version_annotations.c.id)
        )
        return tuple(
            Annotation(
                namespace=r.namespace,
                data=json.loads(r.data_json),
                created_at=_iso(r.created_at),
                created_by=r.created_by,
            )
            for r in rows
        )

    def _record(
        self, row: Any, file_rows: Sequence[Any], notes: tuple[Annotation, ...] = ()
    ) -> ArtifactVersion:
        return ArtifactVersion(
            name=check_name(row.name),
            version=int(row.version),
            kind=row.kind,
            env=row.env,
            manifest_digest=row.manifest_digest,
            size=int(row.size),
            files=tuple(FileEntry(path=f.path, sha256=f.sha256, size=int(f.size)) for f in file_rows),
            created_at=_iso(row.created_at),
            created_by=row.created_by,
            classification=row.classification,
            tags=json.loads(row.tags_json),
            metadata=json.loads(row.metadata_json),
            annotations=notes,
        )

    def _verify_record(self, row: Any, file_rows: Sequence[Any]) -> dict[str, Any]:
        """Cross-check the rows of a version against its signed manifest; returns the manifest."""
        manifest_bytes = bytes(row.manifest)
        try:
            self.signer.verify(manifest_bytes, bytes(row.manifest_signature))
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
        verify_bundle_signature(bytes(row.bundle), self.signer.manifest_public_key_pem())
        signed_files = {f["path"]: (f["sha256"], f["size"]) for f in manifest["files"]}
        if bundle_resources(bytes(row.bundle)) != {p: d for p, (d, _) in signed_files.items()}:
            raise IntegrityError(f"{row.name}:{row.version}: model-signing digests do not match the manifest")
        rows = {f.path: (f.sha256, int(f.size)) for f in file_rows}
        if rows != signed_files or int(row.size) != sum(s for _, s in signed_files.values()):
            raise IntegrityError(f"{row.name}:{row.version}: file rows do not match the signed manifest")
        return manifest

    def _unwrap(self, row: Any) -> bytes:
        try:
            wrapped = WrappedKey.from_json(bytes(row.wrapped))
            if wrapped.env != row.env or wrapped.kek_version != row.kek_version:
                raise IntegrityError("wrapped key metadata mismatch")
            return self.keys.unwrap(wrapped, context=dek_context(row.name, int(row.version)))
        except (CryptoError, IntegrityError, NotFound, ValueError) as exc:
            raise IntegrityError(f"{row.name}:{row.version}: the wrapped data key does not verify") from exc

    def _decrypt_all(self, row: Any, manifest: Mapping[str, Any], dek: bytes, out: Path | None) -> None:
        """Decrypt every file (into ``out`` or nowhere), checking each plaintext digest in the same pass.

        Each authenticated segment is written by this thread while a helper hashes the previous ones; the
        digest and size are compared with the signed manifest before the caller makes anything visible.
        """
        for f in manifest["files"]:
            path = str(f["path"])
            blob = self._blob_for(row, path)
            ad = self._file_ad(row, manifest, path)
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
                    with self._open_blob(row, blob) as src:
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

    @staticmethod
    def _file_ad(row: Any, manifest: Mapping[str, Any], path: str) -> bytes:
        if manifest.get("format") == MANIFEST_FORMAT_V1:
            return file_associated_data(row.name, int(row.version), row.manifest_digest, path)
        return segment_associated_data(row.name, int(row.version), path)

    def _blob_for(self, row: Any, path: str) -> str:
        with self.engine.connect() as conn:
            blob = conn.execute(
                sa.select(files.c.blob).where(files.c.version_id == row.id, files.c.path == path)
            ).scalar_one_or_none()
        if blob is None:
            raise IntegrityError(f"{row.name}:{row.version}: {path} has no blob")
        return str(blob)

    @contextmanager
    def _open_blob(self, row: Any, blob: str) -> Iterator[Any]:
        try:
            handle = self.blobs.open(blob)
        except (NotFound, InvalidInput) as exc:
            raise IntegrityError(f"{row.name}:{row.version}: a blob is missing from the blob store") from exc
        with handle:
            yield handle

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
        check_name(name)
        env = env or self.settings.default_env
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        if env not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {env!r} (one of {', '.join(ENVIRONMENTS)})")
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        check_tags(tags)
        meta = dict(metadata or {})
        check_metadata(meta)
        try:
            canonical_json(meta)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("metadata must be JSON-serialisable") from exc
        self._check("registry:push", model=name, env=env)
        if allow_unsafe and self.identity.role != "admin":
            self.audit.append(
                actor=self.identity.name,
                action="registry:push",
                target=name,
                outcome="denied",
                details={"reason": "allow_unsafe needs admin", "env": env},
            )
            raise AccessDenied(f"{self.identity.name} ({self.identity.role}) may not push with allow_unsafe")
        with self._logged_failure("registry:push", name):
            source = Source(Path(path), reserved=RESERVED_NAMES)
            inspectors = self._inspectors_for(name, allow_unsafe=allow_unsafe)
            try:
                with private_workdir(self.settings.home) as tmp:
                    return self._push_source(
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
            except OSError as exc:  # disk full, an unreadable file, …: one line, nothing committed
                raise ServiceError(f"push of {name} failed: {exc.strerror or exc}") from exc

    def _inspectors_for(self, name: str, *, allow_unsafe: bool) -> builtins.list[Inspector]:
        inspectors = _load_inspectors() if self._inspectors is None else self._inspectors
        if not inspectors:
            if not allow_unsafe:
                raise DependencyMissing(
                    "no artifact inspector is installed, so push refuses",
                    hint="install bastion's scanner, or push with --allow-unsafe as admin",
                )
            logger.warning("pushing %s without any artifact inspection (allow_unsafe)", name)
        return list(inspectors)

    def _reserve(self, name: str, kind: str) -> tuple[int, int]:
        for _ in range(10):
            try:
                with write_transaction(self.engine) as conn:
                    art = conn.execute(sa.select(artifacts).where(artifacts.c.name == name)).first()
                    if art is None:
                        art_id = conn.execute(
                            sa.insert(artifacts).values(
                                name=name, kind=kind, created_at=utcnow(), created_by=self.identity.name
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
                            reserved_by=self.identity.name,
                        )
                    )
                    return int(art_id), top + 1
            except sa.exc.IntegrityError:
                continue  # a concurrent pusher took the number: take the next one
        raise ServiceError("could not reserve a version number (too much contention)")

    def _push_source(
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
    ) -> ArtifactVersion:
        art_id, version = self._reserve(name, kind)
        dek = new_dek()
        stored: dict[str, StoredFile] = {}
        committed = False
        try:
            for rel in source.files:
                with source.open(rel) as fh:
                    stored[rel] = encrypt_file(
                        fh,
                        blobs=self.blobs,
                        dek=dek,
                        ad=segment_associated_data(name, version, rel),
                        tmp=tmp,
                        path=rel,
                    )
            if isinstance(self.blobs, FileBlobStore):
                self.blobs.sync(f.blob for f in stored.values())  # durable before the commit refers to them
            view = StoredVersion(
                name=name,
                version=version,
                stored=stored,
                blobs=self.blobs,
                dek=dek,
                ad=lambda rel: segment_associated_data(name, version, rel),
            )

            def on_finding(exc: UnsafeArtifact) -> None:
                if not allow_unsafe:
                    raise exc
                logger.warning("allow_unsafe: pushing %s despite an inspector finding: %s", name, exc)
                self._log("registry:push", name, "ok", overridden_finding=str(exc), allow_unsafe=True)

            run_inspectors(
                inspectors,
                view,
                workdir=lambda: private_workdir(self.settings.home),
                single_file=not source.is_dir,
                on_finding=on_finding,
            )
            digests = {rel: f.sha256 for rel, f in stored.items()}
            model_dir = tmp / (source.path.name or "artifact")
            os.mkdir(model_dir, 0o700)
            sig_path = tmp / SIGNATURE_FILE
            self.signer.sign_digests(
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
            manifest_signature = self.signer.sign(manifest)
            wrapped = self.keys.wrap(env=env, dek=dek, context=dek_context(name, version))
            self._commit_version(
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
                        self.blobs.delete(f.blob)
                # nothing under this number survives (blobs deleted, DEK never wrapped): release it
                with suppress(sa.exc.SQLAlchemyError), self.engine.begin() as conn:
                    conn.execute(
                        sa.delete(version_reservations).where(
                            version_reservations.c.artifact_id == art_id,
                            version_reservations.c.version == version,
                        )
                    )
        self._log(
            "registry:push",
            f"{name}:{version}",
            env=env,
            kind=kind,
            manifest_digest=manifest_digest,
            allow_unsafe=allow_unsafe,
        )
        return self.show(f"{name}:{version}", _log=False)

    def _commit_version(
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
        now = utcnow()
        with write_transaction(self.engine) as conn:
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
                    created_by=self.identity.name,
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
                    created_by=self.identity.name,
                )
            )
            self._reseal_committed(conn, version_id)

    def _reseal_committed(self, conn: Connection, version_id: int) -> None:
        """Seal a version as stored (read back, so the encoding is the database's) and its name's pointers."""
        row = conn.execute(
            sa.select(versions, artifacts.c.name)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id == version_id)
        ).one()
        reseal_version(conn, self._sealer, row)
        reseal_pointers(conn, self._sealer, row.name)

    # --- pull / verify / materialize ---------------------------------------------------------------------

    def _load_verified(self, ref: ArtifactRef, permission: str) -> tuple[Any, dict[str, Any]]:
        self._check(permission, model=ref.name)
        with self.engine.connect() as conn:
            row = self._resolve(conn, ref)
            file_rows = self._file_rows(conn, row.id)
            check_version(conn, self._sealer, row)
        self._check(permission, model=ref.name, env=row.env)
        return row, self._verify_record(row, file_rows)

    def pull(self, ref: str | ArtifactRef, *, out: str | os.PathLike[str]) -> ArtifactVersion:
        """Verify and decrypt a version into directory ``out`` (which must not exist or be empty).

        The plaintext is staged in ``out/.bastion-pull-<random>/`` (0700) and moved into ``out`` only once
        every file verified, so nothing unverified is ever visible and no plaintext lands outside ``out``
        (a killed pull's staging directory is removed by the next command that opens the project).
        ``OUT.pub.pem`` (the manifest public key) is written beside ``out`` from a private temporary.
        """
        ref = ArtifactRef.parse(ref)
        target = Path(out).absolute()
        with self._logged_failure("registry:pull", str(ref)):
            created = prepare_out_dir(target)
            try:
                row, manifest = self._load_verified(ref, "registry:pull")
                dek = self._unwrap(row)
                stage = target / f".bastion-pull-{secrets.token_hex(8)}"
                with claim(self.settings.home, stage, kind="pull"):
                    os.mkdir(stage, 0o700)
                    try:
                        self._decrypt_all(row, manifest, dek, stage)
                        write_private(stage / SIGNATURE_FILE, bytes(row.bundle))
                        pub_tmp = stage / ".pub.pem"
                        write_private(pub_tmp, self.signer.manifest_public_key_pem().encode("ascii"))
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
        self._log("registry:pull", f"{row.name}:{row.version}", env=row.env)
        return self._record(row, self._file_rows_for(row))

    def _file_rows_for(self, row: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return self._file_rows(conn, row.id)

    def verify(self, ref: str | ArtifactRef) -> ArtifactVersion:
        """Check signatures, rows, the wrapped key, every blob and every plaintext digest; writes nothing."""
        ref = ArtifactRef.parse(ref)
        with self._logged_failure("registry:verify", str(ref)):
            row, manifest = self._load_verified(ref, "registry:read")
            dek = self._unwrap(row)
            self._decrypt_all(row, manifest, dek, None)
        self._log("registry:verify", f"{row.name}:{row.version}", env=row.env)
        return self._record(row, self._file_rows_for(row))

    def read_range(self, ref: str | ArtifactRef, *, path: str, offset: int, length: int) -> RangeRead:
        """Decrypt only the segments of one file that ``[offset, offset+length)`` touches (authenticated)."""
        ref = ArtifactRef.parse(ref)
        with self._logged_failure("registry:read-range", str(ref)):
            row, manifest = self._load_verified(ref, "registry:pull")
            if path not in {f["path"] for f in manifest["files"]}:
                raise NotFound(f"{row.name}:{row.version} has no file {path!r}")
            dek = self._unwrap(row)
            ad = self._file_ad(row, manifest, path)
            with self._open_blob(row, self._blob_for(row, path)) as src:
                result = read_range(key=dek, src=src, associated_data=ad, offset=offset, length=length)
        self._log("registry:read-range", f"{row.name}:{row.version}", path=path, offset=offset, length=length)
        return result

    @contextmanager
    def materialize(self, ref: str | ArtifactRef) -> Iterator[Path]:
        """Yield a private temporary directory holding the verified plaintext; deleted on exit."""
        with private_workdir(self.settings.home) as parent:
            self.pull(ref, out=parent / "artifact")
            yield parent / "artifact"

    # --- metadata ------------------------------------------------------------------------------------------

    def show(self, ref: str | ArtifactRef, *, _log: bool = True) -> ArtifactVersion:
        ref = ArtifactRef.parse(ref)
        with self._logged_failure("registry:show", str(ref)):
            self._check("registry:read", model=ref.name)
            with self.engine.connect() as conn:
                row = self._resolve(conn, ref)
                file_rows = self._file_rows(conn, row.id)
                notes = self._annotations(conn, row.id)
                check_version(conn, self._sealer, row)
            self._check("registry:read", model=ref.name, env=row.env)
            self._verify_record(row, file_rows)
        if _log:
            self._log("registry:show", f"{row.name}:{row.version}", env=row.env)
        return self._record(row, file_rows, notes)

    def list(self, kind: str | None = None) -> list[ArtifactVersion]:
        """Every version this identity may read (newest first per artifact)."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        self._check("registry:read")
        q = self._query().order_by(artifacts.c.name, versions.c.version.desc())
        if kind is not None:
            q = q.where(artifacts.c.kind == kind)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                if allowed(self.identity, "registry:read", model=row.name, env=row.env):
                    check_pointers(conn, self._sealer, row.name)
                    check_version(conn, self._sealer, row)
                    out.append(self._record(row, self._file_rows(conn, row.id)))
        self._log("registry:list", kind or "*", count=len(out))
        return out

    def annotations(self, ref: str | ArtifactRef, *, namespace: str | None = None) -> tuple[Annotation, ...]:
        notes = self.show(ref, _log=False).annotations
        return tuple(a for a in notes if namespace is None or a.namespace == namespace)

    def annotate(self, ref: str | ArtifactRef, *, namespace: str, data: Mapping[str, Any]) -> Annotation:
        """Append a result (audit report, ε spent, watermark commitment, …) to a version."""
        ref = ArtifactRef.parse(ref)
        if not namespace or len(namespace) > 64 or not set(namespace) <= _NAMESPACE_CHARS:
            raise InvalidInput("annotation namespace: 1-64 lowercase letters, digits, '-', '_' or '.'")
        try:
            data_json = json.dumps(dict(data), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("annotation data must be a JSON object") from exc
        permission = ANNOTATION_PERMISSIONS.get(namespace.split(".")[0], _DEFAULT_ANNOTATION_PERMISSION)
        with self._logged_failure("registry:annotate", str(ref)):
            self._check("registry:read", model=ref.name)
            with self.engine.connect() as conn:
                row = self._resolve(conn, ref)
                check_version(conn, self._sealer, row)
            self._check("registry:read", model=ref.name, env=row.env)
            self._check(permission, model=ref.name, env=row.env)
            now = utcnow()
            with write_transaction(self.engine) as conn:
                check_version(conn, self._sealer, row)  # under the write lock: no annotation slipped in
                conn.execute(
                    sa.insert(version_annotations).values(
                        version_id=row.id,
                        namespace=namespace,
                        data_json=data_json,
                        created_at=now,
                        created_by=self.identity.name,
                    )
                )
                self._reseal_committed(conn, row.id)
        self._log(
            "registry:annotate",
            f"{row.name}:{row.version}",
            namespace=namespace,
            data_sha256=hashlib.sha256(data_json.encode()).hexdigest(),
        )
        return Annotation(
            namespace=namespace,
            data=json.loads(data_json),
            created_at=now.isoformat(),
            created_by=self.identity.name,
        )

    # --- promote and keys ----------------------------------------------------------------------------------

    def promote(self, ref: str | ArtifactRef, *, to: str) -> ArtifactVersion:
        """Move a version to a later environment by rewrapping its DEK under that environment's KEK."""
        ref = ArtifactRef.parse(ref)
        if to not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {to!r} (one of {', '.join(ENVIRONMENTS)})")
        with self._logged_failure("registry:promote", str(ref)):
            self._check("registry:promote", model=ref.name, env=to)
            row, _ = self._load_verified(ref, "registry:read")
            if ENVIRONMENTS.index(to) <= ENVIRONMENTS.index(row.env):
                raise InvalidInput(f"{row.name}:{row.version} is in {row.env}: promotion only moves forward")
            dek = self._unwrap(row)
            wrapped = self.keys.wrap(env=to, dek=dek, context=dek_context(row.name, int(row.version)))
            with write_transaction(self.engine) as conn:
                check_pointers(conn, self._sealer, row.name)
                conn.execute(
                    sa.insert(wrapped_keys).values(
                        version_id=row.id,
                        env=to,
                        kek_version=wrapped.kek_version,
                        wrapped=wrapped.to_json().encode(),
                        reason="promote",
                        created_at=utcnow(),
                        created_by=self.identity.name,
                    )
                )
                reseal_pointers(conn, self._sealer, row.name)
        self._log("registry:promote", f"{row.name}:{row.version}", source=row.env, to=to)
        return self.show(f"{row.name}:{row.version}", _log=False)

    def rotate_keys(self, *, env: str) -> KeyRotation:
        """New KEK version for ``env``; every secret wrapped in ``env`` is rewrapped under it.

        That is every current DEK wrap of a version in ``env`` and every wrap a :class:`WrapHolder` keeps
        (data-protection scope keys, watermark keys, …); nothing is re-encrypted.
        """
        if env not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {env!r} (one of {', '.join(ENVIRONMENTS)})")
        self._check("keys:rotate", env=env)
        with self._logged_failure("keys:rotate", env):
            holders = self.wrap_holders()
            new_version = self.keys.rotate(env=env)
            with self.engine.connect() as conn:
                rows = conn.execute(self._query().where(wrapped_keys.c.env == env)).all()
            rewrapped = []
            for row in rows:
                dek = self._unwrap(row)
                rewrapped.append(
                    (
                        row.id,
                        self.keys.wrap(env=env, dek=dek, context=dek_context(row.name, int(row.version))),
                    )
                )
            now = utcnow()
            with self.engine.begin() as conn:
                for version_id, w in rewrapped:
                    conn.execute(
                        sa.insert(wrapped_keys).values(
                            version_id=version_id,
                            env=env,
                            kek_version=w.kek_version,
                            wrapped=w.to_json().encode(),
                            reason="rotate",
                            created_at=now,
                            created_by=self.identity.name,
                        )
                    )
            by_holder: dict[str, int] = {}
            for holder in holders:
                count = 0
                for h in holder.held():
                    if h.wrapped.env != env or h.wrapped.kek_version == new_version:
                        continue
                    secret = self.keys.unwrap(h.wrapped, context=h.context)
                    holder.replace(h.key, self.keys.wrap(env=env, dek=secret, context=h.context))
                    count += 1
                by_holder[holder.label] = count
        self._log(
            "keys:rotate", env, kek_version=new_version, rewrapped=len(rewrapped), rewrapped_other=by_holder
        )
        return KeyRotation(env=env, kek_version=new_version, rewrapped=len(rewrapped), other=by_holder)

    def key_users(self, *, env: str, version: int) -> dict[str, int]:
        """What still uses KEK ``env``/``version``: ``{what: count}`` (registry data keys, each holder)."""
        with self.engine.connect() as conn:
            deks = conn.execute(
                sa.select(sa.func.count()).select_from(
                    self._query()
                    .where(wrapped_keys.c.env == env, wrapped_keys.c.kek_version == version)
                    .subquery()
                )
            ).scalar_one()
        users: dict[str, int] = {}
        if deks:
            users["registry data key(s)"] = int(deks)
        for holder in self.wrap_holders():
            n = sum(1 for h in holder.held() if h.wrapped.env == env and h.wrapped.kek_version == version)
            if n:
                users[holder.label] = n
        return users

    def retire_key(self, *, env: str, version: int) -> None:
        """Retire KEK ``version`` of ``env``; refused (naming them) while any secret still uses it."""
        self._check("keys:rotate", env=env)
        with self._logged_failure("keys:retire", f"{env}/v{version}"):
            users = self.key_users(env=env, version=version)
            if users:
                listed = ", ".join(f"{n} {what}" for what, n in users.items())
                raise Conflict(f"KEK {env}/v{version} still wraps {listed}: run 'bastion keys rotate' first")
            self.keys.retire(env=env, version=version)
        self._log("keys:retire", f"{env}/v{version}")

    def list_keys(self) -> builtins.list[KekInfo]:
        self._check("keys:rotate")
        out: builtins.list[KekInfo] = []
        for env in ENVIRONMENTS:
            out.extend(self.keys.versions(env))
        self._log("keys:list", "*")
        return out

    # --- the audit log (log:read) --------------------------------------------------------------------------

    def log_verify(self, *, trusted: SignedTreeHead | None = None) -> LogVerification:
        """Recompute the audit log against its signed heads (and ``trusted``); raises IntegrityError."""
        self._check("log:read")
        result = self.audit.verify(trusted=trusted)
        entries = self.audit.entries()
        with self.engine.connect() as conn:  # replayed sealed rows still have to agree with the log
            cross_check_log(conn, entries)
        self.access.cross_check_log(entries)
        return result

    def log_head(self) -> SignedTreeHead:
        self._check("log:read")
        return self.audit.tree_head()

    def unsealed_state(self) -> builtins.list[str]:
        """Identities, artifact names and ``NAME:VERSION`` whose seal is missing or does not match."""
        self._check("access:manage")
        with self.engine.connect() as conn:
            registry = unsealed_registry(conn, self._sealer)
        return self.access.unsealed() + registry

    def seal_state(self) -> builtins.list[str]:
        """Seal every identity, pointer set and version as it is now (owner only: the migration step)."""
        listed = self.unsealed_state()
        self.access.seal_all()
        with write_transaction(self.engine) as conn:
            seal_registry(conn, self._sealer)
        self._log("registry:seal", "-", sealed=listed)
        return listed

    def log_public_key_pem(self) -> str:
        """The Ed25519 key that signs tree heads (public: what witnesses pin)."""
        return self.signer.public_key_pem()

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> builtins.list[AuditEntry]:
        self._check("log:read")
        return self.audit.entries(start=start, limit=limit)

    def log_prove(self, index: int) -> InclusionProof:
        """Inclusion proof of entry ``index`` in the latest signed head (checked before it is returned)."""
        self._check("log:read")
        head = self.audit.tree_head()
        proof = self.audit.prove_inclusion(index, tree_size=head.size)
        if proof.root_hash != head.root_hash:
            raise IntegrityError("audit log: the stored entries do not match the latest signed head")
        proof.verify()
        return proof

    def log_consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two signed heads (both signatures and the proof checked)."""
        self._check("log:read")
        proof = self.audit.prove_consistency(old_size, new_size)
        for size, root in ((old_size, proof.old_root), (new_size, proof.new_root)):
            if size and self.audit.signed_head(size).root_hash != root:
                raise IntegrityError(f"audit log: the tree of size {size} does not match its signed head")
        proof.verify()
        return proof


__all__ = [
    "SIGNATURE_FILE",
    "Vault",
    "bundle_resources",
    "dek_context",
    "file_associated_data",
    "public_key_path",
    "verify_bundle_signature",
]
