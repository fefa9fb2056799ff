"""SoftHSM2 tokens for the PKCS#11 tests: a token store in the test's tmp dir, and fresh tokens in it."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

PIN = "246813"  # test PINs of a throwaway token in tmp_path
SO_PIN = "975310"


def init_token(label: str) -> None:
    """A new token ``label`` (user PIN :data:`PIN`) in the store ``$SOFTHSM2_CONF`` names."""
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        timeout=60,
    )


def fresh_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A token store under ``tmp_path`` (``SOFTHSM2_CONF`` points at it) holding one new token; its label."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    label = f"bastion-{uuid.uuid4().hex[:12]}"
    init_token(label)
    return label
