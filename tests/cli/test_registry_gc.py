"""``bastion registry gc`` through the CLI entry point: a dry run by default, --yes deletes, admin only."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.store.blobs import FileBlobStore
from bastion.vault import open_vault


def test_gc_dry_run_then_yes_and_admin_only(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = FileBlobStore(home / "blobs")
    orphan = store.put(io.BytesIO(b"left by a killed push"))
    t = time.time() - 3 * 24 * 3600
    os.utime(store.path(orphan), (t, t))

    assert run(["registry", "gc"]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 orphan blob(s)" in out and "--yes" in out and store.exists(orphan)

    assert run(["registry", "gc", "--yes", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is False and doc["orphans"] == [orphan] and not store.exists(orphan)

    with open_vault(home=home) as vault:
        _, token = vault.create_token(name="dep", role="deployer")
    os.environ["BASTION_TOKEN"] = token
    try:
        assert run(["registry", "gc", "--yes"]) == 2  # AccessDenied: exit 2, one line, no traceback
    finally:
        del os.environ["BASTION_TOKEN"]
    err = capsys.readouterr().err
    assert "admin only" in err and "Traceback" not in err
