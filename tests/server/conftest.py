"""A real ``bastion server`` (subprocess, TLS on 127.0.0.1, ephemeral port) over a fresh home, and CLI
subprocesses holding only BASTION_URL, BASTION_TOKEN and BASTION_CA (no passphrase, home or database)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._support.inprocess import run_cli

from bastion.crypto.kdf import KdfParams
from bastion.serve.tls import self_signed_certificate
from bastion.vault import init_project

PASSPHRASE = "server tests passphrase"
CLI = [sys.executable, "-c", "from bastion.cli import main; main()"]
USERS = [  # name, role, models, envs
    ("alice-ds", "data-scientist", [], ["dev", "staging"]),
    ("dan-deployer", "deployer", [], []),
    ("aud-auditor", "auditor", [], []),
    ("ada-admin", "admin", [], []),
    ("eve-ds", "data-scientist", [], ["dev"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    ca: Path
    tokens: dict[str, str]
    proc: Any = None
    client_home: Path = field(default_factory=Path)

    def env(self, token: str | None, **extra: str) -> dict[str, str]:
        """A client's whole environment: no passphrase, no home, no database."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.client_home),
            "XDG_CONFIG_HOME": str(self.client_home / ".config"),
            "BASTION_HOME": str(self.client_home / "no-home-here"),
            "BASTION_URL": self.url,
            "BASTION_CA": str(self.ca),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if token is not None:
            env["BASTION_TOKEN"] = token
        env.update(extra)
        return env

    def cli(
        self, who: str | None, *args: str, cwd: Path | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        token = None if who is None else self.tokens.get(who, who)
        return subprocess.run(
            [*CLI, *args],
            env=self.env(token, **extra),
            cwd=cwd or self.client_home,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def run(self, who: str | None, *args: str, cwd: Path | None = None, **extra: str) -> Any:
        """:meth:`cli` in this process (same environment, working directory and output; see
        tests/_support/inprocess.py): the real-process checks stay on :meth:`cli`, one per command group."""
        token = None if who is None else self.tokens.get(who, who)
        return run_cli(args, env=self.env(token, **extra), cwd=cwd or self.client_home)

    def local(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in local mode on the server's home (the passphrase holder is the owner), in this
        process (the remote side is what these tests compare it with)."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.client_home),
            "BASTION_HOME": str(self.home),
            "BASTION_PASSPHRASE": PASSPHRASE,
        }
        return run_cli(args, env=env, cwd=self.client_home)


def start_server(
    home: Path, tls: tuple[Path, Path], *, extra_env: dict[str, str] | None = None
) -> tuple[Any, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_PASSPHRASE"] = PASSPHRASE
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [
            *CLI,
            "server",
            "--home",
            str(home),
            "--port",
            str(port),
            "--tls-cert",
            str(tls[0]),
            "--tls-key",
            str(tls[1]),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bastion server exited: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", verify=str(tls[0]), timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bastion server did not start")


def stop_server(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def make_team(
    root: Path, *, database_url: str | None = None
) -> tuple[Path, dict[str, str], tuple[Path, Path]]:
    home = root / "home"
    vault = init_project(
        home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), database_url=database_url
    )
    tokens = {}
    for name, role, models, envs in USERS:
        _, tokens[name] = vault.create_token(name=name, role=role, models=models, envs=envs)
    vault.close()
    tls = self_signed_certificate(root / "tls")
    return home, tokens, tls


def launch(root: Path, home: Path, tokens: dict[str, str], tls: tuple[Path, Path]) -> Server:
    """``bastion server`` over ``home`` (stop it with :func:`stop_server`), with an empty client home."""
    proc, url = start_server(home, tls)
    client_home = root / "client"
    client_home.mkdir()
    return Server(url=url, home=home, ca=tls[0], tokens=tokens, proc=proc, client_home=client_home)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("team")
    srv = launch(root, *make_team(root))
    try:
        yield srv
    finally:
        stop_server(srv.proc)


def make_model(root: Path, *, seed: int = 0) -> Path:
    """A small directory artifact the scanner accepts (raw bytes and JSON; no pickle)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_bytes(bytes((i * 7 + seed) % 251 for i in range(4096)))
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "config.json").write_text(f'{{"seed": {seed}}}', encoding="utf-8")
    return root


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[Any]:
    """A factory: ``team_server(database_url=...)`` starts a server over a fresh home (stopped after)."""
    procs: list[Any] = []

    def _start(*, database_url: str | None = None) -> Server:
        root = tmp_path / f"team{len(procs)}"
        root.mkdir()
        srv = launch(root, *make_team(root, database_url=database_url))
        procs.append(srv.proc)
        return srv

    yield _start
    for proc in procs:
        stop_server(proc)
