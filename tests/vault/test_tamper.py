"""Flipping any single byte of a blob, the manifest, a signature or the wrapped key fails pull and verify
with IntegrityError, and no plaintext is left behind. Hand-edited database rows are caught too."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import IntegrityError
from bastion.store.tables import files, versions, wrapped_keys
from bastion.vault import Vault

TARGETS = ("blob", "manifest", "manifest_signature", "bundle", "wrapped_key")


def _blob_paths(vault: Vault) -> list[Path]:
    return sorted(p for p in vault.settings.blob_dir.rglob("*") if p.is_file())


def _read(vault: Vault, target: str, blob_index: int) -> bytes:
    if target == "blob":
        return _blob_paths(vault)[blob_index].read_bytes()
    with vault.engine.connect() as conn:
        if target == "wrapped_key":
            return bytes(conn.execute(sa.select(wrapped_keys.c.wrapped)).scalar_one())
        return bytes(conn.execute(sa.select(getattr(versions.c, target))).scalar_one())


def _write(vault: Vault, target: str, blob_index: int, data: bytes) -> None:
    if target == "blob":
        _blob_paths(vault)[blob_index].write_bytes(data)
        return
    with vault.engine.begin() as conn:
        if target == "wrapped_key":
            conn.execute(sa.update(wrapped_keys).values(wrapped=data))
        else:
            conn.execute(sa.update(versions).values({target: data}))


def _assert_refused_without_plaintext(vault: Vault, out_parent: Path) -> None:
    before = set(out_parent.iterdir())
    with pytest.raises(IntegrityError):
        vault.pull("m:1", out=out_parent / "out")
    assert set(out_parent.iterdir()) == before  # no directory, no temporary, no public key
    with pytest.raises(IntegrityError):
        vault.verify("m:1")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    target=st.sampled_from(TARGETS),
    blob_index=st.integers(0, 2),
    position=st.floats(0, 1, exclude_max=True),
    xor=st.integers(1, 255),
)
def test_single_byte_flip_is_detected(
    vault: Vault, artifact: Path, tmp_path: Path, target: str, blob_index: int, position: float, xor: int
) -> None:
    if not _blob_paths(vault):
        vault.push(artifact, name="m")
    out_parent = tmp_path / "pulls"
    out_parent.mkdir(exist_ok=True)
    original = _read(vault, target, blob_index)
    pos = int(position * len(original))
    flipped = bytearray(original)
    flipped[pos] ^= xor
    _write(vault, target, blob_index, bytes(flipped))
    try:
        _assert_refused_without_plaintext(vault, out_parent)
    finally:
        _write(vault, target, blob_index, original)
    vault.verify("m:1")  # restored: verifies again (the check above was not vacuous)


def _edit_row(vault: Vault, stmt: sa.Executable) -> None:
    with vault.engine.begin() as conn:
        conn.execute(stmt)


@pytest.mark.parametrize(
    "edit",
    [
        "manifest_digest",
        "file_sha256",
        "file_size",
        "file_path",
        "file_deleted",
        "version_number",
        "tags",
        "wrapped_env",
        "blob_swapped",
    ],
)
def test_hand_edited_rows_are_detected(vault: Vault, artifact: Path, tmp_path: Path, edit: str) -> None:
    vault.push(artifact, name="m")
    vault.push(artifact / "sub", name="other")
    with vault.engine.connect() as conn:
        vid = conn.execute(sa.select(versions.c.id).order_by(versions.c.id)).scalars().first()
        other_blob = conn.execute(sa.select(files.c.blob).where(files.c.version_id != vid)).scalars().first()
    where = files.c.version_id == vid
    stmts = {
        "manifest_digest": sa.update(versions).where(versions.c.id == vid).values(manifest_digest="0" * 64),
        "file_sha256": sa.update(files).where(where, files.c.path == "weights.bin").values(sha256="ab" * 32),
        "file_size": sa.update(files).where(where, files.c.path == "weights.bin").values(size=1),
        "file_path": sa.update(files).where(where, files.c.path == "weights.bin").values(path="w.bin"),
        "file_deleted": sa.delete(files).where(where, files.c.path == "empty.txt"),
        "version_number": sa.update(versions).where(versions.c.id == vid).values(version=9),
        "tags": sa.update(versions).where(versions.c.id == vid).values(tags_json='{"x": "y"}'),
        "wrapped_env": sa.update(wrapped_keys).where(wrapped_keys.c.version_id == vid).values(env="prod"),
        "blob_swapped": sa.update(files)
        .where(where, files.c.path == "sub/config.json")
        .values(blob=other_blob),
    }
    _edit_row(vault, stmts[edit])
    ref = "m:9" if edit == "version_number" else ("m@prod" if edit == "wrapped_env" else "m:1")
    with pytest.raises(IntegrityError):
        vault.verify(ref)
    with pytest.raises(IntegrityError):
        vault.pull(ref, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    vault.verify("other:1")  # the untouched version still verifies


def test_missing_blob_is_an_integrity_error(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="m")
    _blob_paths(vault)[0].unlink()
    with pytest.raises(IntegrityError):
        vault.pull("m:1", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
