"""FIFOs, links and oversized files in the home never hang or mislead a command (review F4): the shared
reader and the signing keys' files."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import MANIFEST_KEY, MANIFEST_PUB, PARAMS, SIGNING_DIR, SigningKeys
from bastion.errors import IntegrityError
from bastion.files import read_regular_file

FAST = KdfParams(time_cost=1, memory_kib=256)


def _within(seconds: float, fifo: Path, fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` in a thread: it must finish (raise or return) within ``seconds`` instead of hanging on
    ``fifo`` (which is then opened for writing once, so a hung reader ends)."""
    box: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            box.append(None)
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if not box:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert box, "hung on a FIFO"
    return box[0]


def test_shared_reader_refuses_fifo_link_and_oversize(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert isinstance(_within(5, fifo, lambda: read_regular_file(fifo, limit=10)), IntegrityError)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    with pytest.raises(IntegrityError, match="too large"):
        read_regular_file(big, limit=10)
    (tmp_path / "link").symlink_to(big)
    with pytest.raises(IntegrityError):
        read_regular_file(tmp_path / "link", limit=100)
    assert read_regular_file(tmp_path / "link", limit=100, follow_symlinks=True) == b"x" * 11
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", limit=10)


@pytest.mark.parametrize("name", [PARAMS, MANIFEST_KEY, MANIFEST_PUB])
def test_signing_files_that_are_fifos_fail_at_once(tmp_path: Path, name: str) -> None:
    SigningKeys.create(tmp_path, "pw", kdf=FAST)
    target = tmp_path / SIGNING_DIR / name
    target.unlink()
    os.mkfifo(target)
    err = _within(10, target, lambda: SigningKeys.open(tmp_path, "pw"))
    assert isinstance(err, IntegrityError), err


def test_signing_key_that_is_a_link_is_refused(tmp_path: Path) -> None:
    SigningKeys.create(tmp_path, "pw", kdf=FAST)
    target = tmp_path / SIGNING_DIR / PARAMS
    moved = tmp_path / "params-elsewhere.json"
    target.rename(moved)
    target.symlink_to(moved)
    with pytest.raises(IntegrityError):
        SigningKeys.open(tmp_path, "pw")
