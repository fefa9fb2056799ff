"""``bastion demo``: the whole lifecycle through its CLI entry point, exit 0, a readable report whose links
resolve, the seeded attackers found and cut off while the benign client keeps working."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sigma")

EXTRACTION_FLAG = "0b7f3a10-5d1e-4c8a-9f00-000000000201"
TOKEN_SPRAY = "0b7f3a10-5d1e-4c8a-9f00-000000000302"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_runs_the_lifecycle(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bastion", "demo", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr and f"open {out / 'index.html'}" in proc.stdout

    index = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', index)
    assert len(links) >= 20
    for link in links:
        assert (out / link).is_file(), link
    for title in (
        "Adversarial audit",
        "ML-BOM",
        "Threat model",
        "Inventory",
        "Hunting findings",
        "Response actions",
    ):
        assert title in index
    assert "<script" not in index

    demo = json.loads((out / "demo.json").read_text())
    facts = demo["facts"]
    assert all(s["exit"] == 0 for s in demo["steps"])
    assert facts["train"]["epsilon"] <= 3.0 + 1e-6 and facts["train"]["accuracy"] > 0.5
    assert facts["audit_grade"] and facts["log"]["ok"] is True
    attack = facts["attack"]
    found = {(f["rule_id"], f["identity"], f["client"]) for f in attack["findings"]}
    assert (EXTRACTION_FLAG, "thief", "-") in found
    assert (TOKEN_SPRAY, "-", "127.0.0.2") in found
    done = {(a["action"], a["target"]) for a in attack["actions"] if a["status"] == "done"}
    assert {("revoke-tokens", "thief"), ("block-identity", "thief"), ("block-client", "127.0.0.2")} <= done
    # the owner's own work (push, pull, key release for serving, at any hour) is no finding and no action
    assert not any(f["identity"] == "owner" for f in attack["findings"]), attack["findings"]
    assert not any(a["action"] == "rotate-key" for a in attack["actions"])
    after = attack["traffic"]["after"]
    assert after["extraction_status"] in (401, 403)
    assert after["sprayer_with_a_valid_token_status"] == 403
    assert after["benign_status"] == 200

    inventory = json.loads((out / "inventory.json").read_text())
    model = next(e for e in inventory if e["name"] == "digits")
    assert model["env"] == "prod" and model["signature"] == "verified" and model["watermark"]
    bom = json.loads((out / "digits-1.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    for secret_file in ("passphrase.txt", "auditor-token.txt"):
        assert (out / secret_file).stat().st_mode & 0o077 == 0
    token = (out / "auditor-token.txt").read_text().strip()
    logs = "".join(p.read_text() for p in (out / "logs").glob("*.txt"))
    assert token not in logs and token.split(".")[-1] not in logs
