"""Remote push + pull through ``bastion server`` over TLS on loopback vs local push + pull, in the same run.

    python benchmarks/bench_remote.py [--size-mib 512] [--workdir DIR] [--repeat N]

One random file of ``--size-mib`` MiB is pushed and pulled back (a) in local mode, by a Python process that
opens the home itself (``open_vault``), and (b) through a ``bastion server`` subprocess (TLS, self-signed
certificate, 127.0.0.1) by a client process that holds only the URL, an admin token and the CA
(``bastion.connect``). Both push with ``allow_unsafe`` (an admin's push without the scanner), so the two sides
run the same vault pipeline and the figure is the cost of the remote path itself: the tar stream over TLS,
the server's upload spool (push), the server's streamed decryption (pull, no spool) and the client's
extraction with its own SHA-256 check of every pulled file. Each process reports its own wall times, CPU
seconds and peak RSS (``VmHWM``, which starts afresh at exec); the server's is its ``VmHWM`` at the end of
the run.

Goal (issue 11): remote throughput >= 0.6x local for push+pull; peak RSS < 256 MiB for the client and the
server. ``--repeat N`` runs N rounds of (local, remote) on fresh names and keeps the best time of each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSPHRASE = "bench remote passphrase"

LOCAL = """
import json, sys, time
from bastion.vault import open_vault
home, src, out, name = sys.argv[1:5]
with open_vault(home=home, passphrase=sys.argv[5]) as v:
    c0 = time.process_time(); t0 = time.perf_counter()
    v.push(src, name=name, allow_unsafe=True)
    c1 = time.process_time(); t1 = time.perf_counter()
    v.pull(name, out=out)
    c2 = time.process_time(); t2 = time.perf_counter()
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) * 1024  # VmHWM: reset at exec, unlike ru_maxrss (which keeps the parent's)
print(json.dumps({"push": t1 - t0, "pull": t2 - t1, "rss": rss, "cpu_push": c1 - c0, "cpu_pull": c2 - c1}))
"""

REMOTE = """
import json, sys, time
import bastion
url, token, ca, src, out, name = sys.argv[1:7]
with bastion.connect(url, token=token, ca=ca) as v:
    c0 = time.process_time(); t0 = time.perf_counter()
    v.push(src, name=name, allow_unsafe=True)
    c1 = time.process_time(); t1 = time.perf_counter()
    v.pull(name, out=out)
    c2 = time.process_time(); t2 = time.perf_counter()
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) * 1024  # VmHWM: reset at exec, unlike ru_maxrss (which keeps the parent's)
print(json.dumps({"push": t1 - t0, "pull": t2 - t1, "rss": rss, "cpu_push": c1 - c0, "cpu_pull": c2 - c1}))
"""


def _run(code: str, *args: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--workdir", default=None, help="Where the home, the file and the pulls live.")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import httpx

    from bastion.crypto.kdf import KdfParams
    from bastion.serve.tls import self_signed_certificate
    from bastion.vault import init_project

    root = Path(tempfile.mkdtemp(prefix="bench-remote-", dir=args.workdir))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = None
    try:
        home = root / "home"
        vault = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())
        _, token = vault.create_token(name="bench-admin", role="admin")
        vault.close()
        cert, key = self_signed_certificate(root / "tls")
        src = root / "model.bin"
        with open(src, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(1 << 20))
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bastion.cli import main; main()",
                "server",
                "--home",
                str(home),
                "--port",
                str(port),
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
            ],
            env=base_env | {"BASTION_PASSPHRASE": PASSPHRASE},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", verify=str(cert), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("bastion server did not start")
            time.sleep(0.2)
        server_idle = _vm_hwm(proc.pid)

        best: dict[str, float] = {}
        rss = {"local": 0, "client": 0}
        cpu: dict[str, float] = {}
        for r in range(args.repeat):
            loc = _run(
                LOCAL,
                str(home),
                str(src),
                str(root / f"out-local-{r}"),
                f"local-{r}",
                PASSPHRASE,
                env=base_env,
            )
            server_cpu0 = _cpu_s(proc.pid)
            rem = _run(
                REMOTE,
                url,
                token,
                str(cert),
                str(src),
                str(root / f"out-remote-{r}"),
                f"remote-{r}",
                env=base_env,
            )
            for side, got in (("local", loc), ("remote", rem)):
                for step in ("push", "pull"):
                    best[f"{side}_{step}"] = min(best.get(f"{side}_{step}", float("inf")), got[step])
            server_cpu = _cpu_s(proc.pid) - server_cpu0
            cpu["local"] = min(cpu.get("local", float("inf")), loc["cpu_push"] + loc["cpu_pull"])
            cpu["remote"] = min(
                cpu.get("remote", float("inf")), rem["cpu_push"] + rem["cpu_pull"] + server_cpu
            )
            rss["local"] = max(rss["local"], loc["rss"])
            rss["client"] = max(rss["client"], rem["rss"])
            for out in (root / f"out-local-{r}", root / f"out-remote-{r}"):
                if _sha256(out / "model.bin") != _sha256(src):
                    raise SystemExit("a pulled file differs from the pushed one")
                shutil.rmtree(out)
        server_peak = _vm_hwm(proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)

    mib = args.size_mib
    local_total = best["local_push"] + best["local_pull"]
    remote_total = best["remote_push"] + best["remote_pull"]
    print(f"bench_remote: {mib} MiB, best of {args.repeat}, TLS on loopback (self-signed), allow_unsafe push")
    for side in ("local", "remote"):
        push, pull = best[f"{side}_push"], best[f"{side}_pull"]
        print(
            f"  {side:6s} push {push:7.2f} s ({mib / push:7.1f} MiB/s)"
            f"   pull {pull:7.2f} s ({mib / pull:7.1f} MiB/s)"
        )
    print(
        f"  remote/local throughput: push {best['local_push'] / best['remote_push']:.2f}x, "
        f"pull {best['local_pull'] / best['remote_pull']:.2f}x, push+pull {local_total / remote_total:.2f}x "
        f"(goal >= 0.6x)"
    )
    print(
        f"  CPU seconds (all threads; client + server for remote): local {cpu['local']:.2f}, "
        f"remote {cpu['remote']:.2f} ({cpu['remote'] / cpu['local']:.2f}x the work)"
    )
    print(
        f"  peak RSS: local process {rss['local'] / 2**20:.0f} MiB, "
        f"remote client {rss['client'] / 2**20:.0f} MiB, "
        f"server {server_peak / 2**20:.0f} MiB (idle {server_idle / 2**20:.0f} MiB) (goal < 256 MiB)"
    )


if __name__ == "__main__":
    main()
