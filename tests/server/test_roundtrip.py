"""Remote mode prints what local mode prints: push / list / show / verify / pull, text and JSON; and the tar
upload refuses every way out of its spool directory."""

from __future__ import annotations

import filecmp
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def model(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "weights.npy", np.random.default_rng(0).standard_normal(40_000).astype(np.float32))
    (root / "sub").mkdir()
    (root / "sub" / "config.json").write_text('{"layers": 2}', encoding="utf-8")
    return root


def test_push_list_show_verify_pull_match_local_mode(server: Any, tmp_path: Path) -> None:
    src = model(tmp_path / "rt")
    pushed = server.cli("ada-admin", "registry", "push", str(src), "--name", "rt", "--tag", "team=a")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith("pushed rt:1 (dev, manifest ")
    # the same file pushed locally and remotely (single-file push) land under the same relative path
    single = server.run("ada-admin", "registry", "push", str(src / "weights.npy"), "--name", "rt-file")
    assert single.returncode == 0, single.stderr
    for args in (
        ("registry", "show", "rt:1"),
        ("registry", "show", "rt:1", "--format", "json"),
        ("registry", "show", "rt-file"),
        ("registry", "verify", "rt:1"),
        ("registry", "verify", "rt:1", "--format", "json"),
        ("registry", "list", "--kind", "model"),
    ):
        remote, here = server.run("ada-admin", *args), server.local(*args)
        assert remote.returncode == here.returncode == 0, (args, remote.stderr, here.stderr)
        assert remote.stdout == here.stdout, args
    out_r, out_l = tmp_path / "remote-out", tmp_path / "local-out"
    remote = server.run("ada-admin", "registry", "pull", "rt:1", "--out", str(out_r), "--format", "json")
    here = server.local("registry", "pull", "rt:1", "--out", str(out_l), "--format", "json")
    assert remote.returncode == here.returncode == 0, (remote.stderr, here.stderr)
    assert json.loads(remote.stdout) == json.loads(here.stdout)
    cmp = filecmp.dircmp(out_r, out_l)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    assert sorted(p.relative_to(out_r).as_posix() for p in out_r.rglob("*")) == [
        "model.sig",
        "sub",
        "sub/config.json",
        "weights.npy",
    ]
    assert (out_r / "weights.npy").read_bytes() == (src / "weights.npy").read_bytes()
    assert (tmp_path / "remote-out.pub.pem").read_bytes() == (tmp_path / "local-out.pub.pem").read_bytes()
    assert not any(p.name.startswith(".bastion-pull-") for p in out_r.iterdir())
    # errors read the same too
    for args in (("registry", "show", "nope:1"), ("registry", "pull", "rt:1", "--out", str(out_r))):
        remote, here = server.run("ada-admin", *args), server.local(*args)
        assert remote.returncode == here.returncode != 0
        assert remote.stderr == here.stderr, args


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data


@pytest.mark.parametrize(
    "evil",
    [
        _member("files/../../escaped.txt"),
        _member("/tmp/escaped-abs.txt"),
        _member("files/link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        _member("files/hard", kind=tarfile.LNKTYPE, link="files/../../escaped.txt"),
        _member("files/dev", kind=tarfile.CHRTYPE),
        _member("files/fifo", kind=tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "device", "fifo"],
)
def test_push_tar_escapes_are_refused(server: Any, evil: tuple[tarfile.TarInfo, bytes]) -> None:
    opts = json.dumps({"name": "evil", "source": "dir"}).encode()
    body = _tar([_member("push.json", opts), _member("files/ok.bin", b"fine"), evil])
    r = httpx.post(
        f"{server.url}/v1/registry/push",
        content=body,
        headers={"Authorization": f"Bearer {server.tokens['ada-admin']}"},
        verify=str(server.ca),
    )
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidInput"
    assert "Traceback" not in r.text and str(server.home) not in r.text
    spool = server.home / "server-spool"
    assert not list(spool.iterdir())  # the spool directory is gone with the request
    assert not (spool.parent / "escaped.txt").exists() and not (server.home / "escaped.txt").exists()
    assert not Path("/tmp/escaped-abs.txt").exists()
    listed = server.run("ada-admin", "registry", "show", "evil")
    assert listed.returncode == 2 and "no artifact named 'evil'" in listed.stderr
