"""Fixtures for the vault tests: a project home with test-only (fast) KDF parameters, artifacts on disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import UnsafeArtifact
from bastion.vault import Vault, init_project, open_vault

PASSPHRASE = "correct horse battery staple"


def refuse_pickles(path: Path) -> None:
    """A real (tiny) inspector for the plug-in seam: refuses any ``.pkl`` file."""
    candidates = [path] if path.is_file() else list(path.rglob("*"))
    for p in candidates:
        if p.suffix == ".pkl":
            raise UnsafeArtifact(f"{p.name}: pickle files are refused")


INSPECTORS = [refuse_pickles]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def vault(home: Path) -> Iterator[Vault]:
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=INSPECTORS)
    yield v
    v.close()


@pytest.fixture
def opener(home: Path, vault: Vault) -> Iterator[object]:
    opened: list[Vault] = []

    def _open(token: str | None = None) -> Vault:
        v = open_vault(home=home, passphrase=PASSPHRASE, token=token, inspectors=INSPECTORS)
        opened.append(v)
        return v

    yield _open
    for v in opened:
        v.close()


def make_artifact(root: Path, *, seed: int = 0, size: int = 5000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_bytes(
        os.urandom(size) if seed < 0 else bytes((i * 7 + seed) % 251 for i in range(size))
    )
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "config.json").write_text(f'{{"seed": {seed}}}', encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    return root


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return make_artifact(tmp_path / "model")


@pytest.fixture(name="make_artifact")
def _make_artifact_fixture() -> object:
    return make_artifact
