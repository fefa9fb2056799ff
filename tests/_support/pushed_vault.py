"""A real project home with a few pushed models (the ``vault`` fixture of the events and respond tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import UnsafeArtifact
from bastion.vault import Vault, init_project

PASSPHRASE = "correct horse battery staple"
MODELS = [f"m{i}" for i in range(6)]


def refuse_pickles(path: Path) -> None:
    """A real (tiny) inspector: refuses any ``.pkl`` file (push refuses to run without one)."""
    for p in [path] if path.is_file() else list(path.rglob("*")):
        if p.suffix == ".pkl":
            raise UnsafeArtifact(f"{p.name}: pickle files are refused")


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A fresh project home (fast KDF) holding one pushed model per name in :data:`MODELS`."""
    v = init_project(
        home=tmp_path / "home",
        passphrase=PASSPHRASE,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[refuse_pickles],
    )
    src = tmp_path / "model"
    src.mkdir()
    for i, name in enumerate(MODELS):
        (src / "weights.bin").write_bytes(bytes([i]) * 64)
        v.push(src, name=name, kind="model")
    yield v
    v.close()
