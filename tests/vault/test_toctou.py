"""Issue 12 item 1: push must store, sign and scan exactly the same bytes (time-of-check/time-of-use).

The attacker can write the pushed directory and swaps ``model.pt`` (same size) for an ``os.system`` pickle
while push runs. Whatever push read is what it stores; the inspectors judge the stored version, never the
source again.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError, InvalidInput, UnsafeArtifact
from bastion.vault import Vault, init_project, open_vault
from bastion.vault.interface import StoredArtifact

from .conftest import PASSPHRASE

MALICIOUS = b"cposix\nsystem\n(S'echo pwned'\ntR."
BENIGN = b"S'" + b"A" * (len(MALICIOUS) - 5) + b"'\n."
assert len(BENIGN) == len(MALICIOUS)


def _blob_files(home: Path) -> set[Path]:
    return {p for p in (home / "blobs").rglob("*") if p.is_file()}


def test_swap_after_the_check_cannot_reach_the_store(tmp_path: Path) -> None:
    """Old push scanned the source, then re-read it: swapping right after the check stored the swap."""
    src = tmp_path / "model"
    src.mkdir()
    model = src / "model.pt"
    model.write_bytes(BENIGN)
    seen: list[bytes] = []

    def inspector_then_attacker(path: Path) -> None:
        data = (path / "model.pt").read_bytes()
        seen.append(data)
        if b"system" in data:
            raise UnsafeArtifact("model.pt: os.system")
        model.write_bytes(MALICIOUS)  # the attacker wins the race the old code had
        os.utime(model, ns=(0, 0))

    v = init_project(
        home=tmp_path / "h",
        passphrase=PASSPHRASE,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[inspector_then_attacker],
    )
    with v:
        pushed = v.push(src, name="m")
        v.verify(pushed.ref)
        out = tmp_path / "out"
        v.pull(pushed.ref, out=out)
        assert (out / "model.pt").read_bytes() == BENIGN == seen[0]
        assert pushed.files[0].size == len(BENIGN)


def test_inspector_sees_the_stored_bytes_not_the_source(tmp_path: Path) -> None:
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(3 << 20))
    seen: dict[str, Any] = {}

    def inspector(path: Path) -> None:
        seen["path"] = path
        seen["data"] = path.read_bytes()

    with init_project(
        home=tmp_path / "h", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[inspector]
    ) as v:
        pushed = v.push(src, name="w")
        assert seen["path"] != src and seen["path"].name == "weights.bin"  # a private copy, decrypted
        assert not seen["path"].exists()  # and deleted afterwards
        assert seen["data"] == src.read_bytes()
        v.pull(pushed.ref, out=tmp_path / "o")
        assert (tmp_path / "o" / "weights.bin").read_bytes() == seen["data"]


class RangeInspector:
    """A StoredInspector: reads the stored version through the vault's range reads, refuses pickles."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[str, ...]]] = []
        self.heads: dict[str, bytes] = {}

    def inspect_stored(self, artifact: StoredArtifact) -> None:
        self.calls.append((artifact.name, artifact.version, artifact.files))
        for rel in artifact.files:
            with artifact.open(rel) as fh:
                assert fh.seek(0, os.SEEK_END) == artifact.size(rel)
                fh.seek(0)
                head = fh.read(64)
                self.heads[rel] = head
                if b"system" in head:
                    raise UnsafeArtifact(f"{rel}: calls os.system")


def test_stored_inspector_refusal_deletes_the_version(tmp_path: Path, artifact: Path) -> None:
    insp = RangeInspector()
    with init_project(
        home=tmp_path / "h", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[insp]
    ) as v:
        blobs_before = _blob_files(tmp_path / "h")
        (artifact / "model.pt").write_bytes(MALICIOUS)
        with pytest.raises(UnsafeArtifact):
            v.push(artifact, name="m")
        assert insp.calls == [("m", 1, ("empty.txt", "model.pt", "sub/config.json", "weights.bin"))]
        assert _blob_files(tmp_path / "h") == blobs_before  # the refused version's blobs are gone
        assert v.list() == []
        (artifact / "model.pt").write_bytes(BENIGN)
        pushed = v.push(artifact, name="m")
        assert pushed.version == 1  # a refused push does not burn its number
        assert insp.heads["model.pt"] == BENIGN


def test_stored_reader_authenticates(tmp_path: Path) -> None:
    """The reader an inspector gets fails closed if the stored blob is edited under it."""
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 << 20))
    home = tmp_path / "h"

    class Tamper:
        def inspect_stored(self, artifact: StoredArtifact) -> None:
            for blob in _blob_files(home):
                data = bytearray(blob.read_bytes())
                data[-100] ^= 1
                blob.write_bytes(bytes(data))
            with artifact.open("f.bin") as fh:
                fh.read()

    with (
        init_project(
            home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[Tamper()]
        ) as v,
        pytest.raises(IntegrityError),
    ):
        v.push(src, name="m")


def _swapper(model: Path, stop: threading.Event) -> None:
    """Swap model.pt between the benign and the malicious pickle (same size), in place and by rename."""
    i = 0
    tmp = model.parent.parent / ".swap"  # outside the pushed directory, same file system
    while not stop.is_set():
        data = MALICIOUS if i % 2 else BENIGN
        if i % 4 < 2:
            with open(model, "r+b") as f:  # in place: same inode, same size
                f.write(data)
        else:
            tmp.write_bytes(data)
            os.replace(tmp, model)
        i += 1
        stop.wait(0.001 * (i % 3))  # let some pushes read a stable file too


def test_real_race_never_stores_a_verified_malicious_version(tmp_path: Path) -> None:
    """A thread swaps model.pt while 25 pushes run, with the real scanner as the inspector."""
    pytest.importorskip("bastion.scan")
    src = tmp_path / "model"
    src.mkdir()
    model = src / "model.pt"
    model.write_bytes(BENIGN)
    (src / "config.json").write_text('{"layers": 2}', encoding="utf-8")
    init_project(home=tmp_path / "h", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast()).close()
    v: Vault = open_vault(home=tmp_path / "h", passphrase=PASSPHRASE)  # the installed inspectors (scanner)
    stop = threading.Event()
    t = threading.Thread(target=_swapper, args=(model, stop), daemon=True)
    t.start()
    outcomes: list[str] = []
    try:
        for _ in range(25):
            try:
                pushed = v.push(src, name="m")
            except UnsafeArtifact:
                outcomes.append("refused")
                continue
            except InvalidInput:  # the file vanished mid-rename: refused, nothing stored
                outcomes.append("changed")
                continue
            outcomes.append("stored")
            v.verify(pushed.ref)  # never a corrupt version behind a successful push
            out = tmp_path / f"out{pushed.version}"
            v.pull(pushed.ref, out=out)
            assert b"system" not in (out / "model.pt").read_bytes()
    finally:
        stop.set()
        t.join()
        v.close()
    assert len(outcomes) == 25


@pytest.mark.parametrize("kind", ["symlink-file", "symlink-dir", "fifo", "git"])
def test_source_refuses_links_special_files_and_git_paths(
    tmp_path: Path, vault: Vault, artifact: Path, kind: str
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    if kind == "symlink-file":
        (artifact / "link.bin").symlink_to(outside)
    elif kind == "symlink-dir":
        (artifact / "linkdir").symlink_to(tmp_path)
    elif kind == "fifo":
        os.mkfifo(artifact / "pipe")
    else:
        (artifact / ".gitignore").write_text("*")
    with pytest.raises(InvalidInput):
        vault.push(artifact, name="m")
    assert vault.list() == []


def test_single_file_push_through_a_symlink_is_refused(tmp_path: Path, vault: Vault) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"x" * 100)
    (tmp_path / "link.bin").symlink_to(real)
    with pytest.raises(InvalidInput):
        vault.push(tmp_path / "link.bin", name="m")


def test_unreadable_source_file_is_one_line_and_stores_nothing(
    tmp_path: Path, vault: Vault, artifact: Path
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    (artifact / "weights.bin").chmod(0)
    with pytest.raises(InvalidInput, match="cannot read"):
        vault.push(artifact, name="m")
    assert vault.list() == []
