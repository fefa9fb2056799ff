"""Crash safety and concurrency with real ``bastion registry push`` processes.

A push killed with SIGKILL at a random moment never leaves a visible partial version, and every committed
version still verifies; two concurrent pushers both succeed with distinct versions.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bastion.vault import Vault

PUSH = [sys.executable, "-c", "from bastion.cli import main; main()", "registry", "push"]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BASTION_HOME"] = str(home)
    env["BASTION_PASSPHRASE"] = "correct horse battery staple"
    env.pop("BASTION_TOKEN", None)
    return env


def _push_cmd(path: Path, name: str) -> list[str]:
    return [*PUSH, str(path), "--name", name, "--allow-unsafe"]


@pytest.mark.slow
def test_sigkill_during_push_never_leaves_a_partial_version(
    vault: Vault, home: Path, make_artifact, tmp_path: Path
) -> None:
    art = make_artifact(tmp_path / "big", seed=-1, size=8 << 20)
    env = _env(home)
    start = time.monotonic()
    done = subprocess.run(_push_cmd(art, "m"), env=env, capture_output=True, text=True, check=False)
    duration = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    rng = random.Random(20261125)
    for _ in range(5):
        proc = subprocess.Popen(
            _push_cmd(art, "m"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.1, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        listed = vault.list()
        assert sorted(v.version for v in listed) == sorted({v.version for v in listed})
        for v in listed:
            assert len(v.files) == 3
            vault.verify(v.ref)
    # the registry still works after the crashes, and versions are never reused
    again = subprocess.run(_push_cmd(art, "m"), env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    versions = [v.version for v in vault.list()]
    assert len(versions) == len(set(versions)) >= 2
    assert max(versions) == vault.show("m").version
    vault.log_verify()


@pytest.mark.slow
def test_two_concurrent_pushers_get_distinct_versions(
    vault: Vault, home: Path, make_artifact, tmp_path: Path
) -> None:
    a = make_artifact(tmp_path / "a", seed=1, size=2 << 20)
    b = make_artifact(tmp_path / "b", seed=2, size=2 << 20)
    env = _env(home)
    procs = [
        subprocess.Popen(
            _push_cmd(p, "shared"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for p in (a, b)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    listed = vault.list()
    assert sorted(v.version for v in listed) == [1, 2]
    for v in listed:
        vault.verify(v.ref)
    digests = {v.files[0].sha256 for v in listed} | {v.files[1].sha256 for v in listed}
    assert len(digests) >= 2
    vault.log_verify()
