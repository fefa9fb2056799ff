"""Versions stored before issue 12 (manifest v1: the AD bound the manifest digest) still verify and pull."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.crypto.aead import encrypt_stream
from bastion.crypto.interface import new_dek
from bastion.errors import IntegrityError
from bastion.store.auditlog import canonical_json
from bastion.store.tables import versions
from bastion.vault import Vault
from bastion.vault._push import StoredFile, segment_associated_data
from bastion.vault.registry import MANIFEST_FORMAT, dek_context, file_associated_data


def push_v1(v: Vault, src: Path, name: str) -> int:
    """What push wrote before issue 12: a v1 manifest, each file sealed with the manifest digest in its AD."""
    digests = {
        p.relative_to(src).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in src.rglob("*")
        if p.is_file()
    }
    art_id, version = v.registry.pipeline.reserve(name, "model")
    sig = src.parent / f"{name}.sig"
    v.signer.sign_digests(directory=src, digests=digests, signature_path=sig)
    bundle = sig.read_bytes()
    entries = [{"path": r, "sha256": d, "size": (src / r).stat().st_size} for r, d in sorted(digests.items())]
    manifest = canonical_json(
        {
            "format": "bastion-manifest/v1",
            "name": name,
            "version": version,
            "kind": "model",
            "classification": None,
            "tags": {},
            "metadata": {},
            "files": entries,
            "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
        }
    )
    digest = hashlib.sha256(manifest).hexdigest()
    dek = new_dek()
    stored = {}
    for e in entries:
        out = io.BytesIO()
        ad = file_associated_data(name, version, digest, e["path"])
        encrypt_stream(key=dek, src=io.BytesIO((src / e["path"]).read_bytes()), dst=out, associated_data=ad)
        out.seek(0)
        stored[e["path"]] = StoredFile(
            path=e["path"], sha256=e["sha256"], size=e["size"], blob=v.blobs.put(out)
        )
    v.registry.pipeline.commit_version(
        art_id=art_id,
        version=version,
        env="dev",
        classification=None,
        tags={},
        meta={},
        manifest=manifest,
        manifest_digest=digest,
        manifest_signature=v.signer.sign(manifest),
        bundle=bundle,
        stored=stored,
        wrapped=v.keys.wrap(env="dev", dek=dek, context=dek_context(name, version)),
    )
    return version


def test_v1_versions_verify_pull_and_range_read(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    version = push_v1(vault, artifact, "old")
    vault.verify(f"old:{version}")
    vault.pull(f"old:{version}", out=tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (artifact / "weights.bin").read_bytes()
    got = vault.read_range(f"old:{version}", path="weights.bin", offset=10, length=20).data
    assert got == (artifact / "weights.bin").read_bytes()[10:30]
    new = vault.push(artifact, name="old")  # the next version is written in the current format
    with vault.engine.connect() as conn:
        formats = [json.loads(m)["format"] for m in conn.execute(sa.select(versions.c.manifest)).scalars()]
    assert formats == ["bastion-manifest/v1", MANIFEST_FORMAT] and new.version == version + 1


def test_format_is_signed_so_it_cannot_be_switched(vault: Vault, artifact: Path) -> None:
    """Relabelling a v2 manifest as v1 (to change which AD is used) breaks the manifest signature."""
    vault.push(artifact, name="m")
    with vault.engine.begin() as conn:
        row = conn.execute(sa.select(versions)).first()
        doc = json.loads(row.manifest)
        doc["format"] = "bastion-manifest/v1"
        conn.execute(sa.update(versions).where(versions.c.id == row.id).values(manifest=canonical_json(doc)))
    with pytest.raises(IntegrityError):
        vault.verify("m:1")


def test_segment_ad_binds_name_version_and_path() -> None:
    base = segment_associated_data("m", 1, "a.bin")
    assert (
        len(
            {
                base,
                segment_associated_data("m", 2, "a.bin"),
                segment_associated_data("n", 1, "a.bin"),
                segment_associated_data("m", 1, "b.bin"),
                segment_associated_data("m1", 1, ".bin"),
            }
        )
        == 5
    )
