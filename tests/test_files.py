"""bastion.files: the one atomic write, atomic output and lock every package uses (issue 13 item 4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bastion.errors import InvalidInput
from bastion.files import atomic_output, atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_with_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    assert atomic_write(target, "névé") == target
    assert target.read_bytes() == "névé".encode() and _mode(target) == 0o600
    atomic_write(target, b"public", mode=0o644)
    assert target.read_bytes() == b"public" and _mode(target) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]


def test_atomic_output_commits_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.csv"]
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and _mode(tmp) == 0o600
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.csv"]


def test_atomic_output_refuses_a_directory_or_a_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"), atomic_output(tmp_path):
        pass
    with pytest.raises(InvalidInput, match="does not exist"), atomic_output(tmp_path / "no" / "x"):
        pass
