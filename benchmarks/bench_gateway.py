"""Gateway overhead: a bare FastAPI/uvicorn OIP endpoint vs ``bastion serve`` with every protection on.

Usage: .venv/bin/python benchmarks/bench_gateway.py [--seconds 8] [--rounds 3] [--concurrency 1,4]
       [--requests 20000] [--tls] [--monitor-only]

Both servers run the same digits MLP (same weights, loaded from the same registry version), one uvicorn worker
each, as subprocesses on 127.0.0.1; one async httpx load generator drives them in turn with the same held-out
digits rows, bounded by time and by request count. bastion runs with authentication (API token, cache),
the per-identity rate limiter (memory; set high enough not to trigger), input guard, extraction monitor
(PRADA + coverage, memory), output policy (consumer top-k), batched Merkle audit logging of every request,
Prometheus metrics and JSON logs (to /dev/null). Plain HTTP on loopback for both (``--tls`` adds a run of both
behind TLS). Printed: throughput ratio (bastion / bare), p50/p99 latency and the added p50/p99, per
concurrency level; then the extraction monitor's per-request cost at growing client history (flat = bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from starlette.responses import Response

PASS = "bench gateway passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_server(model_dir: str, port: int, tls: tuple[str, str] | None) -> None:
    """The anchor: the same OIP JSON parsing and model call, with nothing else."""
    import json

    import torch
    import uvicorn

    from bastion.models import TorchAdapter
    from bastion.models.recipes import load_model
    from bastion.serve.protocol import InferenceRequest

    torch.set_num_threads(1)
    loaded = load_model(model_dir)
    adapter = TorchAdapter(loaded.module, input_shape=(64,), n_classes=10)
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        body = InferenceRequest.model_validate_json(await request.body())
        t = body.inputs[0]
        x = np.asarray(t.data, dtype=np.float32).reshape(t.shape)
        proba = adapter.predict_proba(x)
        out = {
            "model_name": name,
            "outputs": [
                {
                    "name": "probabilities",
                    "shape": list(proba.shape),
                    "datatype": "FP32",
                    "data": proba.reshape(-1).tolist(),
                }
            ],
        }
        return Response(json.dumps(out), media_type="application/json")

    kw = {"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **kw)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1, verify=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("server did not start")


async def load(
    url: str, token: str | None, rows: np.ndarray, *, concurrency: int, seconds: float, limit: int
):
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    bodies = [
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": r.tolist()}]}
        for r in rows
    ]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(limit))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > stop:
                return
            t = time.perf_counter()
            r = await client.post("/v2/models/digits/infer", json=bodies[i % len(bodies)], headers=headers)
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, verify=False, timeout=30) as client:
        for _ in range(20):  # warm-up
            await client.post("/v2/models/digits/infer", json=bodies[0], headers=headers)
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return len(lat) / elapsed, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), errors


def monitor_cost() -> list[tuple[int, float]]:
    from bastion.serve.config import MonitorConfig
    from bastion.serve.monitor import ExtractionMonitor

    monitor = ExtractionMonitor(config=MonitorConfig(), n_features=64, center=0.5)
    rng = np.random.default_rng(0)
    rows = rng.random((20_000, 64), dtype=np.float32) * 0.3
    out, done = [], 0
    for target in (100, 1_000, 5_000, 20_000):
        while done < target - 200:
            monitor.observe("c", rows[done : done + 50])
            done += 50
        best = float("inf")
        for _ in range(25):  # best of 25 blocks of 10 calls: the least disturbed by other processes
            t = time.perf_counter()
            for i in range(10):
                monitor.observe("c", rows[(done + i) % len(rows)][None, :])
            best = min(best, (time.perf_counter() - t) / 10 * 1e6)
            done += 10
        out.append((target, best))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--monitor-only", action="store_true", help="only the extraction-monitor cost")
    ap.add_argument("--serve-bare", nargs=3, metavar=("MODEL_DIR", "PORT", "TLS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare:
        model_dir, port, tls = args.serve_bare
        bare_server(model_dir, int(port), tuple(tls.split(",")) if tls != "-" else None)  # type: ignore[arg-type]
        return

    if args.monitor_only:
        print_monitor_cost()
        return

    from bastion.models.recipes import MlpConfig, build_mlp, load_dataset, save_model, train_model
    from bastion.serve.tls import self_signed_certificate
    from bastion.vault import init_project

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    data = load_dataset("digits")
    module = build_mlp(n_features=64, n_classes=10, hidden=(64,), seed=0)
    train_model(model=module, dataset=data, epochs=5, seed=0)
    model_dir = save_model(
        module, work / "digits", config=MlpConfig(n_features=64, n_classes=10, hidden=(64,))
    )
    vault = init_project(home=work / "home", passphrase=PASS)
    vault.push(model_dir, name="digits")
    _, token = vault.create_token(name="bench", role="consumer", models=["digits"])
    vault.close()
    config = work / "gateway.toml"
    config.write_text(
        '[serve.rate_limit]\nper_address = "100000000/minute"\n'
        '[serve.rate_limit.per_role]\nconsumer = "100000000/minute"\n'
        '[serve.rate_limit.rows_per_role]\nconsumer = "100000000/minute"\n',
        encoding="utf-8",
    )
    from bastion.serve.server import ServeOptions, approve_gateway

    approve_gateway(  # bastion serve digits --approve --config gateway.toml
        ServeOptions(model_ref="digits", home=str(work / "home"), config_file=str(config)), passphrase=PASS
    )
    env = {**os.environ, "BASTION_PASSPHRASE": PASS, "BASTION_HOME": str(work / "home")}
    rows = np.asarray(data.x_test, dtype=np.float32)
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = [False, True] if args.tls else [False]
    print(
        f"digits MLP, {len(rows)} held-out rows; per side and level {args.rounds} alternating rounds,"
        f" {args.seconds:.0f} s or {args.requests} requests in all; medians of the rounds"
    )
    for tls in modes:
        cert = self_signed_certificate(work / "tls") if tls else None
        scheme = "https" if tls else "http"
        ports = free_port(), free_port()
        tls_arg = ",".join(map(str, cert)) if cert else "-"
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(model_dir), str(ports[0]), tls_arg], env=env
        )
        cmd = [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "serve",
            "digits",
            "--port",
            str(ports[1]),
        ]
        cmd += ["--config", str(config)]
        cmd += ["--tls-cert", str(cert[0]), "--tls-key", str(cert[1])] if cert else ["--insecure"]
        guarded = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            urls = (f"{scheme}://127.0.0.1:{ports[0]}", f"{scheme}://127.0.0.1:{ports[1]}")
            wait_ready(urls[0], bare)
            wait_ready(urls[1], guarded)
            print(f"\n{'TLS' if tls else 'plain HTTP'} on loopback")
            print(
                "conc | bare req/s  p50 ms  p99 ms | bastion req/s  p50 ms  p99 ms | ratio  +p50 ms  +p99 ms"
            )
            for c in levels:
                # Alternate short rounds so that load from other processes hits both sides alike; report
                # the median round of each side.
                rounds: dict[str, list[tuple[float, float, float, int]]] = {"bare": [], "bastion": []}
                for _ in range(args.rounds):
                    for side, url, tok in (("bare", urls[0], None), ("bastion", urls[1], token)):
                        res = asyncio.run(
                            load(
                                url,
                                tok,
                                rows,
                                concurrency=c,
                                seconds=args.seconds / args.rounds,
                                limit=args.requests,
                            )
                        )
                        assert res[3] == 0, f"{side}: {res[3]} failed requests"
                        rounds[side].append(res)
                b = [float(np.median([r[k] for r in rounds["bare"]])) for k in range(3)]
                g = [float(np.median([r[k] for r in rounds["bastion"]])) for k in range(3)]
                print(
                    f"{c:4d} | {b[0]:10.0f} {b[1]:7.2f} {b[2]:7.2f} | {g[0]:13.0f} {g[1]:7.2f} {g[2]:7.2f} |"
                    f" {g[0] / b[0]:5.2f} {g[1] - b[1]:+7.2f} {g[2] - b[2]:+8.2f}"
                )
        finally:
            for proc in (bare, guarded):
                proc.terminate()
                proc.wait(20)
    print_monitor_cost()


def print_monitor_cost() -> None:
    print("\nextraction monitor, cost per request (one row) at a client's history length:")
    costs = monitor_cost()
    for n, us in costs:
        print(f"  history {n:6d}: {us:7.1f} µs  ({us / costs[0][1]:.2f}× the 100-query cost)")


if __name__ == "__main__":
    main()
