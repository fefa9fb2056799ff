"""The demo's steps, in order (see :mod:`bastion.demo.runner`)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

from bastion.demo.runner import (
    POLICY,
    DemoError,
    DemoRun,
    Update,
    _body,
    _customers,
    _free_port,
    _start_gateway,
    _stop,
    _wait_ready,
    write_secret,
)


def _json(text: str) -> Any:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise DemoError(f"expected JSON output, got: {text[:200]}")
    return json.loads(text[start:])


def _data(run: DemoRun, cli: Any, update: Update) -> None:
    data = run.out / "data"
    data.mkdir(exist_ok=True)
    update("data", 0.1, "generating customers.csv with PII")
    _customers(data / "customers.csv")
    scan = _json(cli("data-scan", "data", "scan", str(data / "customers.csv"), "--format", "json"))
    update("data", 0.5, "protecting (tokens, FF1, masking)")
    cli(
        "data-protect",
        "data",
        "protect",
        str(data / "customers.csv"),
        "--out",
        str(data / "customers-safe.csv"),
        "--push",
        "customers",
    )
    run.facts["pii_columns"] = (
        sorted(c.get("name", c.get("column", "?")) for c in (scan.get("columns") or []) if c.get("entities"))
        if isinstance(scan, dict)
        else []
    )
    run.links.append(
        ("Protected customer table", "data/customers-safe.csv", "tokenized/masked copy pushed as 'customers'")
    )
    update("data", 1.0, "pushed customers:1")


def _train(run: DemoRun, cli: Any, update: Update, epochs: int) -> None:
    import numpy as np

    from bastion.models.recipes import load_dataset

    digits = load_dataset("digits")
    table = run.out / "data" / "digits-train.csv"
    header = ",".join(f"p{i}" for i in range(digits.x_train.shape[1])) + ",label"
    rows = np.column_stack([digits.x_train, digits.y_train])
    np.savetxt(table, rows, delimiter=",", header=header, comments="", fmt=["%.4f"] * 64 + ["%d"])
    np.savez(run.out / "data" / "holdout.npz", x=digits.x_test, y=digits.y_test)
    update("train", 0.05, "classify the training table; privacy budget ε=40")
    cli("data-scan-train", "data", "scan", str(table))
    cli("budget", "privacy", "budget", "set", str(table), "--epsilon", "40")
    key = _json(cli("wm-keygen", "watermark", "keygen", "--format", "json"))
    key_id = key.get("key_id") or key.get("id")
    run.facts["watermark_key_id"] = key_id
    update("train", 0.2, f"DP-SGD, ε=3, {epochs} epochs, watermark key {str(key_id)[:12]}")
    result = _json(
        cli(
            "train",
            "train",
            "--data",
            str(table),
            "--target",
            "label",
            "--dp",
            "--epsilon",
            "3",
            "--epochs",
            str(epochs),
            "--watermark-key",
            str(key_id),
            "--out",
            str(run.out / "model"),
            "--push",
            "digits",
            "--env",
            "dev",
            "--format",
            "json",
        )
    )
    run.facts["train"] = {k: result.get(k) for k in ("accuracy", "epsilon", "delta") if k in result}
    update("train", 1.0, f"accuracy {result.get('accuracy', '?')}")


def _ship(run: DemoRun, cli: Any, update: Update) -> None:
    # `train --push` pushed the model: the registry's scanner inspected every file, then it was signed (the
    # manifest) and encrypted (a fresh data key wrapped by the dev key). Here: the explicit allow-list scan of
    # the files as written, and a verify of what the registry holds.
    update("ship", 0.2, "scanning the model files")
    cli("scan", "scan", str(run.out / "model"))
    update("ship", 0.6, "verifying the signed, encrypted version")
    cli("verify", "registry", "verify", "digits:1")
    update("ship", 1.0, "digits:1 signed and encrypted")


def _audit(run: DemoRun, cli: Any, update: Update) -> None:
    update("audit", 0.1, "evasion, membership, extraction, poisoning")
    result = _json(
        cli(
            "audit",
            "audit",
            "--model",
            "digits:1",
            "--data",
            str(run.out / "data" / "holdout.npz"),  # raw rows: the model's stored standardisation is applied
            "--budget",
            "quick",
            "--out",
            str(run.out / "audit"),
            "--format",
            "json",
        )
    )
    run.facts["audit_grade"] = result.get("grade")
    run.links.append(
        ("Adversarial audit", "audit/report.html", f"grade {result.get('grade')}: plots and figures")
    )
    update("audit", 1.0, f"grade {result.get('grade')}")


def _gate(run: DemoRun, cli: Any, update: Update) -> None:
    with (run.home / "bastion.toml").open("a", encoding="utf-8") as fh:
        fh.write(POLICY)
    update("gate", 0.2, "threat model from the inventory")
    cli("threat-model", "threat-model", "--from-inventory", "digits", "--out", str(run.home / "SYSTEM.yaml"))
    update("gate", 0.5, "policy check for prod")
    cli(
        "check",
        "check",
        "digits:1",
        "--env",
        "prod",
        "--format",
        "json",
        "--out",
        str(run.out / "check.json"),
    )
    cli("promote", "registry", "promote", "digits:1", "--to", "prod")
    run.links.append(("Policy gate", "check.json", "digits:1 judged against [policy.prod]"))
    update("gate", 1.0, "digits:1 promoted to prod")


def _token(cli: Any, name: str, role: str, *models: str) -> str:
    args = ["token", "create", "--name", name, "--role", role]
    for m in models:
        args += ["--model", m]
    text = cli(f"token-{name}", *args)
    match = re.search(r"bst_[A-Za-z0-9_.\-]+", text)
    if match is None:
        raise DemoError("token create printed no token")
    return match.group(0)


# The model stores its training standardisation: the gateway applies it to the raw rows clients send, and the
# range limits bound the standardised values (in standard deviations), not the raw pixels. Edge pixels that
# are almost always blank have a tiny spread, so the thief's random rows land hundreds of deviations out:
# the limits stay loose so that the extraction monitor, not the range check, is what meets the thief.
SERVE_GUARD = """
[serve.input_guard]
min_value = -10000.0
max_value = 10000.0
"""


def _attacks(run: DemoRun, cli: Any, update: Update) -> dict[str, Any]:
    import httpx
    import numpy as np

    from bastion.models.recipes import load_dataset

    shop = _token(cli, "shop", "consumer", "digits")
    thief = _token(cli, "thief", "consumer", "digits")
    with (run.home / "bastion.toml").open("a", encoding="utf-8") as fh:
        fh.write(SERVE_GUARD)
    cli("approve", "serve", "digits", "--approve")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    update("serve", 0.2, f"bastion serve digits@prod on {url}")
    proc = _start_gateway(run, port)
    try:
        _wait_ready(url, proc)
        update("serve", 1.0, f"serving on {url}")
        infer = f"{url}/v2/models/digits/infer"
        x = load_dataset("digits").x_test.astype("float32")
        rng = np.random.default_rng(3)
        stats: dict[str, Any] = {"benign": {}, "extraction": {}, "spray": {}}
        # Three clients from three loopback addresses, so a block by client address hits only its client.
        clients = {
            who: httpx.Client(timeout=10.0, transport=httpx.HTTPTransport(local_address=addr))
            for who, addr in (("benign", "127.0.0.1"), ("extraction", "127.0.0.3"), ("spray", "127.0.0.2"))
        }
        with contextlib.ExitStack() as stack:
            for c in clients.values():
                stack.enter_context(c)

            def hit(token: str, batch: Any, who: str) -> int:
                http = clients[who]
                r = http.post(infer, json=_body(batch), headers={"Authorization": f"Bearer {token}"})
                stats[who][str(r.status_code)] = stats[who].get(str(r.status_code), 0) + 1
                return r.status_code

            for i in range(10):
                hit(shop, x[i * 4 : i * 4 + 4], "benign")
            update("attack", 0.2, "extraction client: random queries")
            for _ in range(150):
                hit(thief, rng.uniform(0, 1, size=(8, 64)).astype("float32"), "extraction")
            update("attack", 0.6, "token spray: guessed tokens")
            for _ in range(40):
                hit(f"bst_{rng.integers(10**12):012x}.{rng.integers(10**12):x}", x[:1], "spray")
            time.sleep(1.5)  # the gateway's audit writer flushes its batch
            update("attack", 1.0, "done")
            result = _hunt_and_respond(run, update)
            stats["after"] = {
                "extraction_status": hit(thief, x[:1], "extraction"),
                "benign_status": hit(shop, x[:1], "benign"),
                "sprayer_with_a_valid_token_status": hit(shop, x[:1], "spray"),
            }
        result["traffic"] = stats
        return result
    finally:
        _stop(proc)


def _hunt_and_respond(run: DemoRun, update: Update) -> dict[str, Any]:
    from bastion.events import EventStore, collect_audit
    from bastion.hunt import hunt, verifier_for
    from bastion.respond import Responder, load_playbook
    from bastion.vault import open_vault

    update("hunt", 0.1, "collecting events from the audit log")
    start = time.perf_counter()
    with open_vault(home=run.home) as owner, EventStore.for_home(run.home) as store:
        collect_audit(owner, store)
        # as `bastion respond` does: history only lowers a finding when it re-derives from the signed log,
        # and every action's evidence is checked against the log before it is taken
        report = hunt(store=store, verify=verifier_for(owner, store))
        update("hunt", 0.6, f"{len(report.findings)} finding(s); responding")
        # the demo's attackers connect from 127.0.0.2 / 127.0.0.3 and stand for outside clients: only
        # 127.0.0.1 (where the demo's own tools run) is the gateway host's address here
        responder = Responder(
            vault=owner, playbook=load_playbook(), mode="auto", local=("127.0.0.1/32", "::1/128")
        )
        actions = responder.respond(report.findings, events=store)
    seconds = time.perf_counter() - start
    (run.out / "hunt.json").write_text(report.to_json(), encoding="utf-8")
    (run.out / "response.json").write_text(
        json.dumps([a.to_dict() for a in actions], indent=2), encoding="utf-8"
    )
    run.links.append(("Hunting findings", "hunt.json", f"{len(report.findings)} finding(s), ATLAS-mapped"))
    run.links.append(("Response actions", "response.json", f"{len(actions)} action(s) taken automatically"))
    update("hunt", 1.0, f"{len(actions)} action(s)")
    return {
        "findings": [f.to_dict() for f in report.findings],
        "actions": [a.to_dict() for a in actions],
        "hunt_respond_seconds": seconds,
    }


def _governance(run: DemoRun, cli: Any, update: Update) -> None:
    update("govern", 0.2, "inventory")
    (run.out / "inventory.json").write_text(
        cli("inventory", "inventory", "--format", "json"), encoding="utf-8"
    )
    update("govern", 0.4, "ML-BOM (CycloneDX)")
    cli("bom", "bom", "digits:1", "--out", str(run.out / "digits-1.cdx.json"))
    update("govern", 0.6, "threat model")
    html = cli("threat-model-html", "threat-model", str(run.home / "SYSTEM.yaml"), "--format", "html")
    (run.out / "threat-model.html").write_text(html, encoding="utf-8")
    update("govern", 0.8, "audit log verification")
    verify = _json(cli("log-verify", "log", "verify", "--format", "json"))
    (run.out / "log-verify.json").write_text(json.dumps(verify, indent=2), encoding="utf-8")
    run.facts["log"] = verify
    run.links += [
        ("Inventory", "inventory.json", "every version with its evidence"),
        ("ML-BOM", "digits-1.cdx.json", "CycloneDX 1.6 bill of materials of digits:1"),
        ("Threat model", "threat-model.html", "ATLAS/OWASP threats and their mitigations"),
        ("Audit log verification", "log-verify.json", "the Merkle log recomputed against its signed heads"),
    ]
    update("govern", 1.0, "done")


def run_all(run: DemoRun, cli: Any, update: Update, *, epochs: int) -> None:
    update("init", 0.2, "a fresh project home")
    cli("init", "init")
    update("init", 1.0, str(run.home))
    _data(run, cli, update)
    _train(run, cli, update, epochs)
    _ship(run, cli, update)
    _audit(run, cli, update)
    _gate(run, cli, update)
    run.facts["attack"] = _attacks(run, cli, update)
    _governance(run, cli, update)
    write_secret(run.out / "auditor-token.txt", _token(cli, "demo-auditor", "auditor"))
    run.facts["auditor_token_file"] = "auditor-token.txt"  # noqa: S105 - a file name
