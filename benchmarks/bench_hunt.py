"""Threat hunting: detection of a seeded campaign, ``hunt`` over 1 million events, and time to contain.

Anchors (issue 17): the 10 s budget for hunting 1 million events on 2 cores; "every attack found, ≤ 1 false
finding per 10,000 benign events"; "contained within 10 s of the first detectable event".

1. **Campaign** — for each seed, a generated benign week (:func:`bastion.hunt.simulate.benign_week`: gateway
   applications around the clock, people pulling during working hours, weekly key rotation, reveals, guard
   blocks) plus the four attacks of :func:`~bastion.hunt.simulate.campaign` (extraction, token spray, insider
   bulk pull, key misuse): attacks found, false findings per 10,000 benign events (rules + anomaly score);
   then again with :func:`~bastion.hunt.simulate.adaptive_campaign` added (six attacks by someone who knows
   every short-window rule and stays under it: found by the cumulative thresholds).
2. **1 million events** — a larger benign week (``--apps``) plus the campaign in a SQLite event store;
   ``hunt()`` wall time (rule pack loaded inside the timing; rules and anomaly also timed apart), then the
   ``bastion hunt`` command end to end (process start, vault open, collect, hunt, print) on a home holding
   that store.
3. **Time to detect / contain** — a real vault (fresh home, 6 pushed models), ``respond --watch``'s loop
   (:func:`bastion.respond.watch`, 1 s interval, auto mode, packaged playbook) in a thread, and an attacker
   with a real token: *insider bulk pull* (a data scientist pulls model after model) and *key misuse* (a
   stolen admin token lists the key ring, then pulls). Detect = the tick whose findings first include the
   attack, contain = the playbook's action done; both measured from the first detectable event (the 5th
   distinct model pulled; the first pull after the key operation). The attacker then re-authenticates for
   every pull until refused, which proves the containment. Then a real gateway (uvicorn on 127.0.0.1, the
   extraction monitor off so the rules are what detects) with the response gate: *token spray* (a fresh
   random token every 0.1 s; detectable at the 20th) and *extraction* (a consumer token at ~25 requests/s;
   detectable at the 300th request in a minute); refused = the first 403/503 "incident response" answer.

    python benchmarks/bench_hunt.py                       # 3 seeds, 1M events, both TTC scenarios
    python benchmarks/bench_hunt.py --apps 40 --seeds 1   # quicker
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def campaign_detection(seeds: int) -> None:
    from bastion.events import EventStore
    from bastion.hunt import hunt, load_rules
    from bastion.hunt.simulate import adaptive_campaign, benign_week, campaign, score

    rules = load_rules()
    for adaptive in (False, True):
        title = "seeded campaign" + (
            " + the adaptive campaign (6 attacks under the rules)" if adaptive else ""
        )
        print(f"== {title} in a benign week (rules + anomaly) ==")
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                store = EventStore(f"sqlite:///{tmp}/events.db")
                benign = benign_week(seed=seed)
                attack_events, attacks = campaign(seed=seed)
                if adaptive:
                    more_events, more = adaptive_campaign(seed=seed)
                    attack_events, attacks = attack_events + more_events, attacks + more
                store.append(benign + attack_events)
                report = hunt(store=store, rules=rules, seed=seed)
                result = score(report.findings, attacks, benign_events=len(benign))
                print(
                    f"seed {seed}: {len(benign):,} benign + {len(attack_events):,} attack events; "
                    f"found {len(result.found)}/{len(attacks)} {list(result.found)}; "
                    f"missed {list(result.missed)}; false findings {result.false_findings} "
                    f"({result.false_per_10k:.3f} per 10k benign; goal <= 1)"
                )
                store.close()


def million(apps: int, home_dir: Path) -> None:
    from bastion.crypto.kdf import KdfParams
    from bastion.events import EventStore
    from bastion.events.collect import seal_seeded
    from bastion.hunt import hunt, load_rules
    from bastion.hunt.anomaly import score_windows
    from bastion.hunt.simulate import benign_week, campaign, score
    from bastion.vault import init_project

    print(f"== hunt over ~1M events ({apps} apps) ==")
    home = home_dir / "home"
    passphrase = "bench-" + os.urandom(6).hex()
    vault = init_project(home=home, passphrase=passphrase, kdf=KdfParams.unsafe_fast(), inspectors=[])
    store = EventStore.for_home(home)
    t = time.perf_counter()
    benign = benign_week(seed=0, apps=apps)
    attack_events, attacks = campaign(seed=0)
    gen = time.perf_counter() - t
    t = time.perf_counter()
    store.append(benign + attack_events)
    seal_seeded(vault, store)  # the generated rows vouched for with the key ring (no audit entry behind them)
    vault.close()
    print(f"{store.count():,} events (generated in {gen:.1f} s, stored in {time.perf_counter() - t:.1f} s)")
    t, cpu = time.perf_counter(), time.process_time()
    report = hunt(store=store)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    result = score(report.findings, attacks, benign_events=len(benign))
    t = time.perf_counter()
    rules = load_rules()
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    hunt(store=store, rules=rules, anomaly=False)
    t_rules = time.perf_counter() - t
    t = time.perf_counter()
    score_windows(store)
    t_anomaly = time.perf_counter() - t
    print(
        f"hunt(), first call in this process: {wall:.2f} s wall = {wall / 10.0:.2f}x the 10 s budget, "
        f"{cpu:.2f} s CPU (rule pack load {t_load:.2f} s, rules "
        f"{t_rules:.2f} s, anomaly {t_anomaly:.2f} s); found {len(result.found)}/4, "
        f"false {result.false_findings} ({result.false_per_10k:.3f} per 10k)"
    )
    store.close()
    env = {**os.environ, "BASTION_HOME": str(home), "BASTION_PASSPHRASE": passphrase}
    t, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bastion.cli import main; sys.exit(main())",
            "hunt",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        check=False,
    )
    cli = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"`bastion hunt` end to end: {cli:.2f} s wall = {cli / 10.0:.2f}x the budget, {cli_cpu:.2f} s CPU "
        f"(exit {proc.returncode}; {len(proc.stdout):,} bytes of JSON)"
    )


def _watch_scenario(name: str, tmp: Path) -> None:
    from bastion.crypto.kdf import KdfParams
    from bastion.errors import AccessDenied, AuthenticationFailed
    from bastion.events import EventStore
    from bastion.respond import Responder, load_playbook
    from bastion.vault import init_project, open_vault

    passphrase = "bench-" + os.urandom(6).hex()
    home = tmp / name
    vault = init_project(
        home=home, passphrase=passphrase, kdf=KdfParams.unsafe_fast(), inspectors=[_no_pickles]
    )
    src = tmp / f"{name}-model"
    src.mkdir()
    models = [f"m{i}" for i in range(6)]
    for i, m in enumerate(models):
        (src / "weights.bin").write_bytes(bytes([i]) * 256)
        vault.push(src, name=m, kind="model")
    actor = "insider" if name == "insider-bulk-pull" else "ops"
    _, token = vault.create_token(name=actor, role="data-scientist" if actor == "insider" else "admin")
    vault.close()
    rule = (
        "0b7f3a10-5d1e-4c8a-9f00-000000000402"
        if actor == "insider"
        else "0b7f3a10-5d1e-4c8a-9f00-000000000703"
    )
    store = EventStore(f"sqlite:///{tmp / (name + '-events.db')}")
    with open_vault(home=home, passphrase=passphrase) as owner:
        race = _Race(
            Responder(vault=owner, playbook=load_playbook(), mode="auto"),
            store,
            detected=lambda f: f.rule_id == rule and f.identity == actor,
            contained=lambda r: r.target == actor,
        )
        seen, stop, loop = race.seen, race.stop, race.loop
        time.sleep(1.5)  # the first tick has run (empty store)
        seen.clear()
        detectable = refused = None
        attempts = 0
        try:
            for i in range(200):
                attempts += 1
                try:
                    with open_vault(home=home, passphrase=passphrase, token=token) as attacker:
                        if actor == "ops" and i == 0:
                            attacker.list_keys()
                        started = time.time()  # the pull's audit entry (the event) is written after this
                        attacker.pull(models[i % len(models)], out=tmp / f"{name}-o{i}")
                except (AuthenticationFailed, AccessDenied):
                    refused = time.time()
                    break
                if detectable is None and (actor == "ops" or i == 4):
                    detectable = started  # the pull that makes the rule true: measured from its start
                time.sleep(0.25)
        finally:
            stop.set()
            loop.join()
    store.close()
    race.report(
        name,
        detectable,
        refused,
        f"attacker refused {{}} s after the first detectable event ({attempts} attempts)",
    )


def _gateway_scenario(name: str, tmp: Path) -> None:
    """A real gateway (uvicorn on 127.0.0.1) over a real vault; the attacker and the watch loop race."""
    import socket

    import httpx
    import numpy as np
    import uvicorn

    from bastion.crypto.kdf import KdfParams
    from bastion.events import EventStore
    from bastion.models import TorchAdapter
    from bastion.models.recipes import build_mlp
    from bastion.respond import Responder, load_playbook, state_path
    from bastion.respond.gate import ResponseGate
    from bastion.serve import Authenticator, Gateway, GatewayConfig, ServedModel, create_app
    from bastion.serve.config import MonitorConfig, RateLimitConfig
    from bastion.serve.server import token_verifier
    from bastion.vault import init_project

    quiet = logging.getLogger("bench_hunt.gateway")  # no JSON line per request on stdout
    quiet.setLevel(logging.WARNING)
    passphrase = "bench-" + os.urandom(6).hex()
    vault = init_project(home=tmp / name, passphrase=passphrase, kdf=KdfParams.unsafe_fast(), inspectors=[])
    _, token = vault.create_token(name="mallory", role="consumer", models=["digits"])
    adapter = TorchAdapter(
        build_mlp(n_features=64, n_classes=10, hidden=(16,), seed=0), input_shape=(64,), n_classes=10
    )
    limits = RateLimitConfig(
        per_role={"consumer": "100000/minute"}, rows_per_role={"consumer": "100000/minute"}
    )
    config = GatewayConfig(rate_limit=limits, monitor=MonitorConfig(enabled=False))  # the rules detect here
    gateway = Gateway(
        model=ServedModel(name="digits", version="1", adapter=adapter, digest="sha256:bench", env="dev"),
        config=config,
        authenticator=Authenticator(verify_token=token_verifier(vault)),
        audit=vault.audit,
        response_gate=ResponseGate.for_vault(vault),
        logger=quiet,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(gateway), log_level="warning", access_log=False))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2/models/digits/infer"
    x = np.random.default_rng(0).random(64).astype(np.float32).tolist()
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x}]}
    rule = (
        "0b7f3a10-5d1e-4c8a-9f00-000000000302"
        if name == "token-spray"
        else "0b7f3a10-5d1e-4c8a-9f00-000000000102"
    )
    threshold = 20 if name == "token-spray" else 300
    store = EventStore(f"sqlite:///{tmp / (name + '-events.db')}")
    race = _Race(
        # 127.0.0.2 stands for an outside sprayer: only 127.0.0.1 is this host's own address here
        Responder(vault=vault, playbook=load_playbook(), mode="auto", local=("127.0.0.1/32", "::1/128")),
        store,
        detected=lambda f: f.rule_id == rule,
        contained=lambda r: r.rule_id == rule,
    )
    stop, loop = race.stop, race.loop
    detectable = refused = None
    sent = 0
    try:
        # the spray from its own address: 127.0.0.1 (a local proxy's) is never blocked automatically
        local = "127.0.0.1" if name == "extraction" else "127.0.0.2"
        with httpx.Client(timeout=30, transport=httpx.HTTPTransport(local_address=local)) as client:
            for i in range(5000):
                secret = token if name == "extraction" else "bst_" + os.urandom(24).hex()
                started = time.time()
                r = client.post(url, json=body, headers={"Authorization": f"Bearer {secret}"})
                sent += 1
                if r.status_code in (403, 503) and "incident response" in r.text:
                    refused = time.time()
                    break
                if i + 1 == threshold:
                    detectable = started  # the request that makes the rule true
                time.sleep(0.02 if name == "extraction" else 0.1)
    finally:
        stop.set()
        loop.join()
        server.should_exit = True
        serving.join(10)
        gateway.close()
        store.close()
        state_path(vault.settings.home).unlink(missing_ok=True)
        vault.close()
    race.report(
        f"{name} (gateway)",
        detectable,
        refused,
        f"refused {{}} s after the first detectable request ({sent} requests sent)",
    )


class _Race:
    """The watch loop of a scenario, started at once in a thread: records when the first finding that
    ``detected`` and the first completed action that ``contained`` arrive (``seen``)."""

    def __init__(
        self,
        responder: Any,
        store: Any,
        *,
        detected: Callable[[Any], bool],
        contained: Callable[[Any], bool],
    ) -> None:
        from bastion.hunt import load_rules
        from bastion.respond import watch

        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self._detected, self._contained = detected, contained
        self.loop = threading.Thread(
            target=watch,
            kwargs={
                "responder": responder,
                "store": store,
                "rules": load_rules(),
                "stop": self.stop,
                "on_tick": self._on_tick,
            },
        )
        self.loop.start()

    def _on_tick(self, tick: Any) -> None:
        if "detect" not in self.seen and any(self._detected(f) for f in tick.found):
            self.seen["detect"] = tick.hunted_at
        for r in tick.results:
            if r.status == "done" and self._contained(r):
                self.seen.setdefault("contain", r.at)

    def report(self, label: str, detectable: float | None, refused: float | None, tail: str) -> None:
        """Print detect/contain/refuse times from the first detectable event (``tail``: ``{}`` is the
        refusal time)."""
        assert detectable is not None
        ttd = self.seen.get("detect", float("nan")) - detectable
        ttc = self.seen.get("contain", float("nan")) - detectable
        refused_s = (refused - detectable) if refused is not None else float("nan")
        print(
            f"{label}: detect {ttd:.2f} s, contain {ttc:.2f} s (goal <= 10 s), "
            + tail.format(f"{refused_s:.2f}")
        )


def _no_pickles(path: Path) -> None:
    from bastion.errors import UnsafeArtifact

    for p in [path] if path.is_file() else list(path.rglob("*")):
        if p.suffix == ".pkl":
            raise UnsafeArtifact(f"{p.name}: pickle refused")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--apps", type=int, default=150, help="gateway apps in the big week (150 ≈ 1M events)"
    )
    parser.add_argument("--skip", default="", help="comma list of: campaign,million,watch")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores ({'shared' if load > 1.0 else 'quiet'})")
    if "campaign" not in skip:
        campaign_detection(args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        if "million" not in skip:
            million(args.apps, Path(tmp))
        if "watch" not in skip:
            print("== respond --watch against a real vault ==")
            for scenario in ("insider-bulk-pull", "key-misuse"):
                _watch_scenario(scenario, Path(tmp))
            for scenario in ("token-spray", "extraction"):
                _gateway_scenario(scenario, Path(tmp))


if __name__ == "__main__":
    main()
