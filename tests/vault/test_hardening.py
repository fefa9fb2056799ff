"""Issue 12 items 2, 3, 4, 8, 10: pull temporaries, crash leftovers, permissions, names, empty range reads."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import Conflict, InvalidInput
from bastion.vault import Vault, init_project, open_vault, public_key_path
from bastion.vault.refs import ArtifactRef, check_name

from .conftest import PASSPHRASE


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


# --- item 2: no predictable temporary beside the pulled directory ------------------------------------------


def test_planted_symlink_at_pub_tmp_does_not_overwrite_a_victim(
    vault: Vault, artifact: Path, tmp_path: Path
) -> None:
    vault.push(artifact, name="m")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    (tmp_path / "out.pub.pem.tmp").symlink_to(victim)  # the old predictable temporary
    (tmp_path / "out.pub.pem").symlink_to(victim)  # and the final name itself
    vault.pull("m", out=out)
    assert victim.read_text() == "precious"
    pub = public_key_path(out)
    assert not pub.is_symlink() and pub.read_text().startswith("-----BEGIN PUBLIC KEY")
    assert _mode(pub) == 0o600


@pytest.mark.parametrize("kind", ["symlink", "dangling", "file", "nonempty"])
def test_pull_out_must_be_a_new_or_empty_directory(
    vault: Vault, artifact: Path, tmp_path: Path, kind: str
) -> None:
    vault.push(artifact, name="m")
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.mkdir()
    if kind == "symlink":
        out.symlink_to(victim)
    elif kind == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    elif kind == "file":
        out.write_text("x")
    else:
        out.mkdir()
        (out / "keep").write_text("x")
    with pytest.raises(Conflict):
        vault.pull("m", out=out)
    assert list(victim.iterdir()) == [] and not (tmp_path / "nowhere").exists()


def test_pull_out_under_proc_is_one_clear_error(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="m")
    with pytest.raises((InvalidInput, Conflict)):
        vault.pull("m", out="/proc/self/x")


def test_failed_pull_leaves_nothing(vault: Vault, artifact: Path, tmp_path: Path, home: Path) -> None:
    vault.push(artifact, name="m")
    for blob in (home / "blobs").rglob("*"):
        if blob.is_file() and blob.stat().st_size > 4000:
            data = bytearray(blob.read_bytes())
            data[-1] ^= 1
            blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(Exception, match=r"signed digest|authenticate"):
        vault.pull("m", out=out)
    assert not out.exists() and not public_key_path(out).exists()
    assert not [p for p in tmp_path.iterdir() if "bastion-pull" in p.name]


# --- item 3: a killed command's plaintext is removed by the next run ----------------------------------------

_KILL_IN_PULL = """
import os, signal, sys
from bastion.vault import open_vault
from bastion.vault._records import Records
orig = Records.decrypt_all
def killed(self, row, manifest, dek, out):
    orig(self, row, manifest, dek, out)
    if out is not None:
        print(out, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
Records.decrypt_all = killed
v = open_vault(home=sys.argv[1], passphrase=sys.argv[2], inspectors=[])
v.pull("m", out=sys.argv[3])
"""

_KILL_IN_PUSH = """
import os, signal, sys
from pathlib import Path
from bastion.vault import open_vault
def inspector(path):
    print(path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
v = open_vault(home=sys.argv[1], passphrase=sys.argv[2], inspectors=[inspector])
v.push(sys.argv[3], name="single")
"""


def _run_killed(script: str, *args: str) -> Path:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def test_killed_pull_plaintext_is_cleaned_by_next_command(
    vault: Vault, artifact: Path, home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vault.push(artifact, name="m")
    out = tmp_path / "out"
    stage = _run_killed(_KILL_IN_PULL, str(home), PASSPHRASE, str(out))
    assert stage.parent == out and stage.name.startswith(".bastion-pull-")  # only inside OUT
    assert (stage / "weights.bin").exists()  # the plaintext the kill left
    assert [p.name for p in tmp_path.iterdir() if "bastion-pull" in p.name] == []
    with caplog.at_level(logging.WARNING):
        open_vault(home=home, passphrase=PASSPHRASE, inspectors=[]).close()
    assert not stage.exists()
    assert "leftover" in caplog.text and str(stage) in caplog.text


def test_killed_single_file_push_leaves_no_link_or_copy(vault: Vault, home: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(5000))
    seen = _run_killed(_KILL_IN_PUSH, str(home), PASSPHRASE, str(src))
    assert seen != src and seen.exists() and seen.read_bytes() == src.read_bytes()
    assert os.stat(src).st_nlink == 1  # never hard-linked into the home
    open_vault(home=home, passphrase=PASSPHRASE, inspectors=[]).close()
    assert not seen.exists()
    assert [p.name for p in (home / "tmp").iterdir()] == ["claims"]
    assert list((home / "tmp" / "claims").iterdir()) == []


def test_live_temporaries_are_not_cleaned(vault: Vault, artifact: Path, home: Path) -> None:
    seen: list[Path] = []

    def inspector(path: Path) -> None:
        open_vault(home=home, passphrase=PASSPHRASE, inspectors=[]).close()  # another command meanwhile
        seen.append(path)
        assert path.exists()

    with open_vault(home=home, passphrase=PASSPHRASE, inspectors=[inspector]) as v:
        v.push(artifact, name="m")
    assert seen


# --- item 4: 0700 home, 0600 files, whatever the umask --------------------------------------------------


def test_permissions_under_umask_000_and_preexisting_0755_home(tmp_path: Path, artifact: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    old = os.umask(0)
    try:
        with init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]) as v:
            v.push(artifact, name="m", allow_unsafe=True)
            out = tmp_path / "out"
            v.pull("m", out=out)
    finally:
        os.umask(old)
    assert _mode(home) == 0o700
    for p in home.rglob("*"):
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), p
    for p in [out, *out.rglob("*"), public_key_path(out)]:
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), p
    assert (home / "bastion.db").exists()


def test_open_tightens_a_loosened_home(vault: Vault, home: Path) -> None:
    os.chmod(home, 0o755)
    os.chmod(home / "bastion.db", 0o644)
    os.chmod(home / "bastion.toml", 0o666)
    open_vault(home=home, passphrase=PASSPHRASE, inspectors=[]).close()
    assert (_mode(home), _mode(home / "bastion.db"), _mode(home / "bastion.toml")) == (0o700, 0o600, 0o600)


def test_init_warns_on_a_short_passphrase(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        init_project(
            home=tmp_path / "h", passphrase="short", kdf=KdfParams.unsafe_fast(), inspectors=[]
        ).close()
    assert "shorter than 12" in caplog.text


# --- item 8: ASCII names and versions, the whole string ---------------------------------------------------


@pytest.mark.parametrize("bad", ["digits\n", "digits\r\n", "dígits", "digits\u200b", "ｄigits"])
def test_names_are_ascii_full_match(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(bad)


@pytest.mark.parametrize(
    "ref", ["digits:١", "digits:²", "digits:1\n", "digits:01", "digits:0", "digits:+1", "digits:1_0"]
)
def test_versions_are_ascii_digits(ref: str) -> None:
    with pytest.raises(InvalidInput):
        ArtifactRef.parse(ref)


def test_good_refs_still_parse() -> None:
    assert ArtifactRef.parse("digits:12").version == 12
    assert ArtifactRef.parse("a.b-c_d@prod").env == "prod"


# --- item 10: a range read always authenticates something -----------------------------------------------


@pytest.mark.parametrize(("offset", "length"), [(0, 0), (5000, 0), (5000, 10), (4999, 0)])
def test_empty_or_end_range_authenticates_the_last_segment(
    vault: Vault, artifact: Path, home: Path, offset: int, length: int
) -> None:
    vault.push(artifact, name="m")
    assert vault.read_range("m", path="weights.bin", offset=offset, length=length).segments_decrypted == 1
    for blob in (home / "blobs").rglob("*"):
        if blob.is_file() and blob.stat().st_size > 4000:
            data = bytearray(blob.read_bytes())
            data[-1] ^= 1
            blob.write_bytes(bytes(data))
    with pytest.raises(Exception, match="authenticate"):
        vault.read_range("m", path="weights.bin", offset=offset, length=length)


def test_directory_planted_at_pub_pem_is_one_clear_error(
    vault: Vault, artifact: Path, tmp_path: Path
) -> None:
    vault.push(artifact, name="m")
    (tmp_path / "out.pub.pem").mkdir()
    with pytest.raises(InvalidInput, match="cannot write"):
        vault.pull("m", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
