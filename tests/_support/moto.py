"""A real S3-API server process (moto in server mode) on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SECRET = "bastion-test-secret-key-never-logged"  # a test credential for a local server
ACCESS = "bastion-test-access-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1; yield its URL; stop it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto server did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def s3_env(mp: pytest.MonkeyPatch, url: str) -> None:
    """The standard AWS environment chain pointing at ``url`` (boto3, pyarrow and child processes read it)."""
    mp.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.delenv("AWS_PROFILE", raising=False)
