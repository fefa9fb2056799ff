"""Cost of witnessing the audit log: per-append time with no witness (the anchor), a file witness on another
path, and a `bastion witness` over TLS on 127.0.0.1 (issue 11 item 5). Prints ratios vs the anchor.

    python benchmarks/bench_witness.py [--appends 200] [--prefill 0]

``--prefill`` appends that many entries first (unwitnessed), to show how the HTTP push (which sends an
RFC 6962 consistency proof computed from the stored leaves) grows with the log's size.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from bastion.crypto.signing import Ed25519Signer
from bastion.serve.tls import self_signed_certificate
from bastion.store.auditlog import AuditLog
from bastion.store.db import ensure_tables, open_engine
from bastion.store.witness import FileWitness, HttpWitness
from bastion.witness.app import create_app
from bastion.witness.service import WitnessService


@contextlib.contextmanager
def _server(app: object, cert: Path, key: Path) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ssl_certfile=str(cert), ssl_keyfile=str(key))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _run(
    root: Path, kind: str, appends: int, prefill: int, signer: Ed25519Signer, url: str, cert: Path
) -> float:
    engine = open_engine(f"sqlite:///{root / (kind + '.db')}")
    ensure_tables(engine)
    log = AuditLog(engine, signer)
    for i in range(prefill):
        log.append(actor="bench", action="prefill", target=str(i), outcome="ok")
    if kind == "file":
        log.witnesses = (FileWitness(root / "elsewhere" / "heads.jsonl"),)
    elif kind == "http":
        log.witnesses = (HttpWitness(url, public_key_pem=_WITNESS_KEY[0], ca=str(cert)),)
    start = time.perf_counter()
    for i in range(appends):
        log.append(actor="bench", action="append", target=str(i), outcome="ok")
    elapsed = time.perf_counter() - start
    log.close()
    engine.dispose()
    return elapsed / appends


_WITNESS_KEY: list[str] = []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--prefill", type=int, default=0)
    args = parser.parse_args()
    signer = Ed25519Signer.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        service = WitnessService.init(root / "witness", log_public_key_pem=signer.public_key_pem())
        _WITNESS_KEY.append(service.public_key_pem())
        cert, key = self_signed_certificate(root / "tls")
        with _server(create_app(service), cert, key) as url:
            results = {
                k: _run(root, k, args.appends, args.prefill, signer, url, cert)
                for k in ("none", "file", "http")
            }
    anchor = results["none"]
    print(f"appends={args.appends} prefill={args.prefill}")
    print(f"{'witness':<8} {'ms/append':>10} {'vs none':>8}")
    for kind, per in results.items():
        print(f"{kind:<8} {per * 1000:>10.2f} {per / anchor:>8.2f}")


if __name__ == "__main__":
    main()
