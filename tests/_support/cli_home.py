"""A fresh project home (fast KDF, no inspectors) that the CLI under test uses through ``$BASTION_HOME``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.vault import init_project


def project_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **init: Any) -> Path:
    """A fresh home at ``tmp_path/home`` (fast KDF; ``init`` goes to ``init_project``, default inspectors
    unless it says otherwise); ``BASTION_HOME`` points at it (the passphrase comes from the root conftest)."""
    h = tmp_path / "home"
    init_project(
        home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast(), **init
    ).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The home's path, with no inspectors (``BASTION_HOME`` points at it)."""
    return project_home(tmp_path, monkeypatch, inspectors=[])
