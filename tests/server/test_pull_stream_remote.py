"""Remote pull streams straight from the decryption: a blob tampered on the server makes the stream abort
mid-way, and the client keeps nothing (no output directory, no staging, no key file); an intact pull is
byte-identical. The server's spool stays empty (nothing is written there on pull)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import bastion
from bastion.errors import IntegrityError

SEGMENT = 1 << 20


def _blobs(home: Path) -> list[Path]:
    return [p for p in (home / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_tampered_segment_aborts_the_stream_and_nothing_is_kept(server: Any, tmp_path: Path) -> None:
    data = os.urandom(4 * SEGMENT + 777)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with bastion.connect(server.url, token=server.tokens["ada-admin"], ca=server.ca) as v:
        before = set(_blobs(server.home))
        v.push(src, name="streamed", allow_unsafe=True)
        (blob,) = set(_blobs(server.home)) - before
        ok = tmp_path / "ok"
        v.pull("streamed", out=ok)
        assert (ok / "big.bin").read_bytes() == data
        assert sorted(os.listdir(ok)) == ["big.bin", "model.sig"]

        raw = bytearray(blob.read_bytes())
        raw[len(raw) // 2] ^= 0x40  # a middle segment: rows, signatures and the final segment still verify
        blob.write_bytes(bytes(raw))
        out = tmp_path / "out"
        with pytest.raises(IntegrityError):
            v.pull("streamed", out=out)
        assert not out.exists()
        assert not (tmp_path / "out.pub.pem").exists()
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(IntegrityError):
            v.pull("streamed", out=empty)
        assert os.listdir(empty) == []  # an existing directory is left as it was: empty
    spools = [p for p in server.home.rglob("*") if "spool" in p.as_posix() and p.is_file()]
    assert spools == []
