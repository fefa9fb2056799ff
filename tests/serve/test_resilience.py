"""Issue 12, items 19, 22, 24, 26 against real servers: slow clients time out and are capped per address, the
audit trail fails closed (a real SQLite write lock held by another process), ``--workers`` keeps the master
passphrase out of every worker's environment, and ``serve`` validates before it announces (port in use: 2)."""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bastion.cli import run
from bastion.serve.config import AuditConfig, ConnectionsConfig, GatewayConfig

INFER = "/v2/models/digits/infer"
PASSPHRASE = "serve tests passphrase"


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _closed(sock: socket.socket, wait: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``wait`` seconds, and what it sent first."""
    sock.settimeout(wait)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, data
            data += chunk
    except TimeoutError:
        return False, data
    except OSError:
        return True, data


def test_slow_clients_time_out_and_are_capped_per_address(kit, project, digits) -> None:
    """300 sockets trickling headers were never timed out; now headers and bodies have deadlines and one
    address holds a bounded number of connections."""
    conn = ConnectionsConfig(header_timeout_s=2.0, body_timeout_s=1.0, max_per_address=20, max_total=100)
    gateway = kit.make_gateway(project, digits, GatewayConfig(connections=conn), audit=None)
    with kit.serving(gateway) as srv:
        socks = [_connect(srv.port) for _ in range(40)]
        for s in socks:
            s.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers unfinished
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        while srv.tracker.refused < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.tracker.refused == 20 and srv.tracker.count("127.0.0.1") == 20  # the rest refused at once
        results = [_closed(s, 6.0) for s in socks]
        assert all(closed for closed, _ in results)  # nothing stays open
        timed_out = [data for _, data in results if data.startswith(b"HTTP/1.1 408")]
        assert len(timed_out) == 20  # the admitted ones hit the header deadline (not idle keep-alive)
        # A body that trickles: headers complete, 10 of 100 bytes, then nothing.
        slow_body = _connect(srv.port)
        slow_body.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + project.tokens["alice"].encode() + b"\r\nContent-Length: 100\r\n\r\n"
            b'{"inputs":'
        )
        t0 = time.monotonic()
        closed, data = _closed(slow_body, 5.0)
        assert closed and time.monotonic() - t0 < 3.0 and b"408" in data.split(b"\r\n", 1)[0]
        for s in [*socks, slow_body]:
            s.close()
        time.sleep(0.1)
        with httpx.Client(base_url=srv.url) as client:  # an ordinary client is served again
            r = client.post(
                INFER, json=kit.infer_body(digits.x_test[0]), headers=kit.bearer(project.tokens["alice"])
            )
        assert r.status_code == 200 and srv.tracker.timed_out >= 21


@pytest.fixture
def short_busy_vault(project, monkeypatch: pytest.MonkeyPatch):
    """A second handle on the session's home whose SQLite busy timeout is 0.3 s instead of 30 s, so a
    held write lock makes the audit append fail in the test's time (the lock itself is real)."""
    import bastion.store.db as db
    from bastion.vault import open_vault

    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    vault = open_vault(home=project.home, passphrase=PASSPHRASE)
    yield vault
    vault.close()


def _db_path(project) -> Path:
    return Path(str(project.vault.settings.database_url).removeprefix("sqlite:///"))


def _records(vault, start: int) -> list[dict]:
    return [
        r
        for e in vault.audit.entries(start=start)
        if e.action == "serve:requests"
        for r in e.details["requests"]
    ]


def test_audit_trail_fails_closed_while_the_database_is_locked(
    kit, project, digits, short_busy_vault
) -> None:
    """A local process held the SQLite write lock: the gateway served 73 requests and lost 2 records. Now it
    refuses (503) while the trail cannot be written, and every request it served is in the log afterwards."""
    vault = short_busy_vault
    before = vault.audit.size()
    gateway = kit.make_gateway(
        project, digits, GatewayConfig(audit=AuditConfig(block_s=0.5)), audit=vault.audit
    )
    body = kit.infer_body(digits.x_test[0])
    headers = kit.bearer(project.tokens["alice"])
    locker = sqlite3.connect(_db_path(project), timeout=5, isolation_level=None)
    statuses: list[int] = []
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                statuses.append(client.post(INFER, json=body, headers=headers).status_code)
                time.sleep(0.05)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        time.sleep(2.0)  # the writer retries and catches up
        after = client.post(INFER, json=body, headers=headers).status_code
    assert statuses.count(503) >= 5 and statuses[-1] == 503, statuses  # refused while the trail is down
    assert after == 200
    assert gateway.writer.dropped == 0
    served = statuses.count(200) + 1
    allowed = [r for r in _records(vault, before) if r["decision"] == "allow"]
    assert len(allowed) == served  # every served request is in the signed log
    refused = [r for r in _records(vault, before) if r["decision"] == "deny:audit-unavailable"]
    assert len(refused) == statuses.count(503)


def test_audit_count_mode_counts_every_record_it_cannot_keep(kit, project, digits, short_busy_vault) -> None:
    vault = short_busy_vault
    cfg = GatewayConfig(audit=AuditConfig(on_failure="count", max_queue=3))
    gateway = kit.make_gateway(project, digits, cfg, audit=vault.audit)
    before = vault.audit.size()
    locker = sqlite3.connect(_db_path(project), timeout=5, isolation_level=None)
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        locker.execute("BEGIN IMMEDIATE")
        try:
            codes = [
                client.post(
                    INFER, json=kit.infer_body(digits.x_test[0]), headers=kit.bearer(project.tokens["alice"])
                ).status_code
                for _ in range(8)
            ]
            metrics = client.get("/metrics", headers=kit.bearer(project.tokens["dave"])).text
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        time.sleep(2.0)
    assert codes == [200] * 8  # served anyway in count mode
    kept = len(_records(vault, before))
    assert gateway.writer.dropped >= 5 and kept + gateway.writer.dropped == 9  # 8 + the /metrics request
    assert "bastion_gateway_audit_dropped " in metrics and "bastion_gateway_audit_dropped 0.0" not in metrics


def test_port_in_use_is_exit_2_and_nothing_is_announced_before_validation(
    project, registry_model: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    # Other modules share the session's project and approve other configs: approve this one explicitly.
    assert run(["serve", registry_model, "--approve", "--home", str(project.home)]) == 0
    capsys.readouterr()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        code = run(["serve", registry_model, "--insecure", "--port", str(port), "--home", str(project.home)])
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("error: cannot listen on 127.0.0.1:")
        and "bastion gateway for" not in err
    ), err
    code = run(["serve", "no-such-model", "--insecure", "--port", "1", "--home", str(project.home)])
    err = capsys.readouterr().err
    assert code == 2 and "bastion gateway for" not in err and "Traceback" not in err


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
@pytest.mark.redis
def test_workers_never_see_the_passphrase_in_their_environment(
    redis_url: str, project, registry_model: str, serve_process, tmp_path: Path
) -> None:
    proc = serve_process(project.home, registry_model, "--workers", "2", "--redis", redis_url)
    proc.wait_ready(timeout=150)
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while time.monotonic() < deadline:  # uvicorn's workers, and whatever multiprocessing starts beside them
        workers = _children(proc.proc.pid)
        if len(workers) >= 2:
            break
        time.sleep(0.5)
    assert len(workers) >= 2
    for pid in workers:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PASSPHRASE.encode() not in environ and b"BASTION_PASSPHRASE" not in environ
        assert PASSPHRASE.encode() not in cmdline
    r = httpx.get(proc.url + "/v2/health/ready", timeout=5)
    assert r.status_code == 200


def test_worker_handoff_takes_the_secret_exactly_once() -> None:
    """The spawn pickle carries the secret; in the worker it is taken once, and never via os.environ."""
    script = (
        "import os, pickle\n"
        "from bastion.serve._workers import WorkerConfig, take\n"
        "cfg = WorkerConfig('bastion.serve.server:worker_app', factory=True, secret='s3cret', spec='{}')\n"
        "clone = pickle.loads(pickle.dumps(cfg))\n"
        "from bastion.serve import _workers\n"
        "with _workers._lock:\n"
        "    _workers._handoff.update(secret=clone.bastion_secret, spec=clone.bastion_spec)\n"
        "assert take() == ('s3cret', '{}')\n"
        "try:\n    take()\nexcept RuntimeError:\n    print('once')\n"
        "assert 's3cret' not in ''.join(os.environ.values())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "BASTION_PASSPHRASE"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "once", out.stderr[-500:]


def test_connection_settings_are_validated() -> None:
    from bastion.errors import ConfigError
    from bastion.serve.config import config_from_mapping

    for table in ({"header_timeout_s": 0}, {"max_per_address": 0}, {"max_per_address": 10, "max_total": 5}):
        with pytest.raises(ConfigError):
            config_from_mapping({"connections": table})
    with pytest.raises(ConfigError):
        config_from_mapping({"audit": {"on_failure": "ignore"}})
    assert (
        dataclasses.asdict(config_from_mapping({"audit": {"on_failure": "count"}}).audit)["on_failure"]
        == "count"
    )
