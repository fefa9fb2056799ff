"""``Vault.pull_stream``: the verified plaintext segment by segment; a segment or digest that fails mid-stream
raises IntegrityError from the iterator (never a clean end), and every check of pull happens first."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.errors import AccessDenied, IntegrityError
from bastion.store.tables import files
from bastion.vault import SIGNATURE_FILE, Vault

SEGMENT = 1 << 20


def _collect(vault: Vault, ref: str) -> dict[str, bytes]:
    return {f.path: b"".join(bytes(c) for c in f.chunks) for f in vault.pull_stream(ref)}


def _big(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * SEGMENT + 12345)  # four segments
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    return src, data


def _blob_path(vault: Vault, name: str) -> Path:
    with vault.engine.connect() as conn:
        blob = conn.execute(sa.select(files.c.blob).where(files.c.path == name)).scalar_one()
    found = [p for p in vault.settings.blob_dir.rglob("*") if p.is_file() and p.name in str(blob)]
    assert len(found) == 1, found
    return found[0]


def test_stream_matches_pull(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="m")
    got = _collect(vault, "m")
    vault.pull("m", out=tmp_path / "out")
    out = tmp_path / "out"
    on_disk = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == on_disk
    assert list(got)[-1] == SIGNATURE_FILE
    stream = vault.pull_stream("m")
    assert stream.version == vault.show("m")
    assert [p for p, _ in stream.listing] == [*sorted(f.path for f in stream.version.files), SIGNATURE_FILE]


def test_one_authenticated_segment_per_chunk(vault: Vault, tmp_path: Path) -> None:
    src, data = _big(tmp_path)
    vault.push(src, name="big")
    entries = iter(vault.pull_stream("big"))
    f = next(entries)
    sizes = [len(c) for c in f.chunks]
    sig = next(entries)
    assert sizes == [SEGMENT, SEGMENT, SEGMENT, 12345]
    assert f.sha256 == hashlib.sha256(data).hexdigest()
    assert sig.path == SIGNATURE_FILE


def test_tampered_segment_mid_stream_raises_after_earlier_segments(vault: Vault, tmp_path: Path) -> None:
    src, data = _big(tmp_path)
    vault.push(src, name="big")
    blob = _blob_path(vault, "big.bin")
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside the third segment (of four)
    blob.write_bytes(bytes(raw))
    stream = vault.pull_stream("big")  # the rows, signatures and the final segment still verify
    got: list[bytes] = []
    entries = iter(stream)
    f = next(entries)
    with pytest.raises(IntegrityError):
        for chunk in f.chunks:
            got.append(bytes(chunk))
    assert 0 < len(got) < 4  # it failed mid-stream, after handing out authenticated segments only
    assert b"".join(got) == data[: len(b"".join(got))]
    log = vault.log_entries()  # logged when it failed, even if the consumer stops there
    assert (log[-1].action, log[-1].outcome) == ("registry:pull", "denied")
    with pytest.raises(IntegrityError):  # carrying on after the failure never ends cleanly
        list(entries)
    assert all(e.outcome != "ok" for e in vault.log_entries()[len(log) :])


def test_skipped_chunks_are_still_verified(vault: Vault, tmp_path: Path) -> None:
    src, _ = _big(tmp_path)
    vault.push(src, name="big")
    blob = _blob_path(vault, "big.bin")
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0x01
    blob.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        for _ in vault.pull_stream("big"):  # never reads the chunks itself
            pass


def test_checks_happen_before_the_first_byte(vault: Vault, artifact: Path, opener: object) -> None:
    vault.push(artifact, name="m")
    with vault.engine.begin() as conn:  # a row edited by a database writer: refused before streaming
        conn.execute(sa.update(files).where(files.c.path == "weights.bin").values(size=1))
    with pytest.raises(IntegrityError):
        vault.pull_stream("m")
    _, token = vault.create_token(name="aud", role="auditor")
    with pytest.raises(AccessDenied):
        opener(token).pull_stream("m")  # type: ignore[operator]


def test_success_is_logged_once_at_the_end(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="m")
    before = len(vault.log_entries())
    stream = vault.pull_stream("m")
    assert len(vault.log_entries()) == before
    _ = [bytes(c) for f in stream for c in f.chunks]
    # the pull is logged before its first byte, its end after the last (issue 17 H3)
    pull, last = vault.log_entries()[-2:]
    assert (pull.action, pull.outcome, pull.target) == ("registry:pull", "ok", "m:1")
    assert (last.action, last.outcome, last.target) == ("registry:pull-end", "ok", "m:1")
    with pytest.raises(Exception, match="only once"):
        iter(stream)
