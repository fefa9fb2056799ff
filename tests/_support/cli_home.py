"""A fresh project home (fast KDF, no inspectors) that the CLI under test uses through ``$BASTION_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home's path; ``BASTION_HOME`` points at it (the passphrase comes from the root conftest)."""
    h = tmp_path / "home"
    init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), inspectors=[]
    ).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h
