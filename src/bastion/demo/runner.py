"""``bastion demo``: the whole lifecycle on built-in data, each step through the ``bastion`` CLI (the
documented face), in a fresh project home under ``OUT``.

Steps: generate a customer table with PII → scan and protect it (tokens, lineage, pushed) → DP-SGD training on
digits with a trigger-set watermark key (ε charged to the ledger) → scan, sign, encrypt, push → adversarial
audit (recorded on the version) → policy gate for prod and promotion → serve (a real ``bastion serve``
process on 127.0.0.1) → a benign client, a model-extraction client and a token-spraying client → collect
events, hunt, respond (auto) and check the attackers are cut off → inventory, ML-BOM, threat model, log
verification → one ``index.html`` linking everything. Each step's output is kept under ``OUT/logs``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import BastionError, ConfigError

Update = Callable[[str, float, str], None]

POLICY = """
[policy]
threat_model = "SYSTEM.yaml"

[policy.prod]
require_signature = true
require_clean_scan = true
max_epsilon = 8.0
require_watermark = true
require_threat_model = true
"""
# forbid_unprotected_pii is left out: `bastion train --data FILE` records the digest of the parsed arrays,
# while `bastion data scan` classifies the file by its SHA-256, so the gate cannot link the two yet.


_TOKEN = re.compile(r"(bst_[A-Za-z0-9]{4})[A-Za-z0-9_.\-]*")


def write_secret(path: Path, value: str) -> None:
    """A throwaway demo secret in a file only its owner can read (0600, created fresh)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")


class DemoError(BastionError):
    """A demo step failed (its log is named in the message)."""


@dataclass
class DemoRun:
    """What the demo did and measured; :mod:`bastion.demo.page` renders it."""

    out: Path
    home: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (title, relative path, what it is)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Cli:
    """Runs ``bastion ARGS --home HOME`` in-process, its output kept in ``OUT/logs/NN-name.txt``."""

    def __init__(self, run: DemoRun) -> None:
        self.run_ = run
        self.n = 0
        (run.out / "logs").mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, *args: str, ok: tuple[int, ...] = (0,), home: bool = True) -> str:
        from bastion.cli import run as cli

        self.n += 1
        log = self.run_.out / "logs" / f"{self.n:02d}-{name}.txt"
        argv = [*args, "--home", str(self.run_.home)] if home else list(args)
        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(argv)
        seconds = time.perf_counter() - start
        text = out.getvalue()
        shown = _TOKEN.sub(r"\1…(redacted)", text + err.getvalue())  # tokens print once: not into logs
        log.write_text(f"$ bastion {' '.join(argv)}\n# exit {code}, {seconds:.1f} s\n{shown}")
        rel = str(log.relative_to(self.run_.out))
        self.run_.steps.append(
            {"command": "bastion " + " ".join(args), "exit": code, "seconds": seconds, "log": rel}
        )
        if code not in ok:
            tail = " | ".join((text + err.getvalue()).strip().splitlines()[-3:])
            raise DemoError(f"step '{name}' exited {code} (see {log}): {tail}")
        return text


def _customers(path: Path, rows: int = 200, seed: int = 7) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    first = ["Ada", "Bjørn", "Chen", "Dara", "Emil", "Fatima", "Gustav", "Hana", "Ivo", "Jonas"]
    last = ["Berg", "Hansen", "Li", "Nakamura", "Olsen", "Perez", "Quist", "Rahman", "Sato", "Tran"]
    lines = ["name,email,phone,card_number,zip,age,gender,plan,monthly_spend"]
    for i in range(rows):
        f, s = first[int(rng.integers(10))], last[int(rng.integers(10))]
        lines.append(
            f"{f} {s},{f.lower()}.{s.lower()}{i}@example.com,+47 4{int(rng.integers(10**6, 10**7))},"
            f"4111111111111111,{int(rng.integers(1000, 9999))},{int(rng.integers(18, 90))},"
            f"{'FM'[i % 2]},{['basic', 'plus', 'pro'][i % 3]},{rng.gamma(2.0, 30.0):.2f}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(x: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }


def _start_gateway(run: DemoRun, port: int) -> subprocess.Popen[bytes]:
    bastion = Path(sys.executable).with_name("bastion")
    cmd = (
        [str(bastion)] if bastion.exists() else [sys.executable, "-c", "from bastion.cli import main; main()"]
    )
    log = (run.out / "logs" / "gateway.txt").open("wb")
    proc = subprocess.Popen(
        [*cmd, "serve", "digits@prod", "--insecure", "--port", str(port), "--home", str(run.home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "BASTION_NO_PROGRESS": "1"},
    )
    log.close()
    return proc


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the gateway exited with {proc.returncode} (see logs/gateway.txt)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v2/health/ready", timeout=2.0).status_code == 200:
                return
        time.sleep(0.3)
    raise DemoError("the gateway did not become ready (see logs/gateway.txt)")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(*, out: Path, update: Update, passphrase: str | None = None, epochs: int = 4) -> DemoRun:
    """Run the whole lifecycle into ``out`` (must not exist or be empty); returns what happened."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty: give --out a new directory")
    out.mkdir(parents=True, exist_ok=True)
    run = DemoRun(out=out, home=out / "home")
    secret = passphrase or os.environ.get("BASTION_PASSPHRASE") or ""
    if not secret:  # a throwaway home: its generated passphrase is kept beside it for `bastion ui`
        secret = secrets.token_urlsafe(24)
        write_secret(out / "passphrase.txt", secret)
        run.facts["passphrase_file"] = "passphrase.txt"  # noqa: S105 - a file name
    with _env(BASTION_PASSPHRASE=secret, BASTION_NO_PROGRESS="1"):
        os.environ.pop("BASTION_TOKEN", None)
        from bastion.demo import _lifecycle

        _lifecycle.run_all(run, _Cli(run), update, epochs=epochs)
    from bastion.demo.page import write_index

    update("report", 0.5, "index.html")
    write_index(run)
    update("report", 1.0, "done")
    return run


__all__ = ["POLICY", "DemoError", "DemoRun", "run_demo"]
