"""Issue 12 item 31: the lineage permission check lives in the library entry point, not only in the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import AccessDenied
from bastion.store.lineage import LineageDataset, record_run
from bastion.vault import init_project, open_vault
from bastion.vault.lineage import lineage


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    return h


def test_lineage_needs_registry_read_in_the_library(home: Path) -> None:
    with open_vault(home=home) as vault:
        record_run(
            vault.engine,
            job="data.protect",
            inputs=[LineageDataset("file", "/raw.csv", "sha256:" + "a" * 64)],
            outputs=[LineageDataset("file", "/prot.csv", "sha256:" + "b" * 64)],
        )
        token = vault.create_token(name="c-digits", role="consumer", models=("digits",))[1]
        auditor = vault.create_token(name="aud", role="auditor")[1]
    with open_vault(home=home, token=token) as vault, pytest.raises(AccessDenied):
        lineage(vault=vault, ref="/prot.csv", namespace="file")
    with open_vault(home=home, token=auditor) as vault:
        graph = lineage(vault=vault, ref="/prot.csv", namespace="file")
    assert [s.name for s in graph.sources] == ["/raw.csv"]
