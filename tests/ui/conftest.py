"""A project home with a model, its audit, lineage, gateway and guard alerts, and tokens for each role."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.store.lineage import FILE_NAMESPACE, REGISTRY_NAMESPACE, LineageDataset, record_run
from bastion.vault import init_project, open_vault

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class UIProject:
    home: Path
    tokens: dict[str, str]
    reports: Path
    model_ref: str


def audit_note(report_sha256: str) -> dict[str, Any]:
    return {
        "created": "2026-12-01T00:00:00+00:00",
        "budget": "quick",
        "seed": 0,
        "grade": "C",
        "reasons": [f"reviewer note {XSS}"],
        "families": {
            "evasion": {
                "status": "ok",
                "grade": "C",
                "metrics": {"clean_accuracy": 0.95, "robust_accuracy": 0.41},
            },
            "membership": {"status": "ok", "grade": "A", "metrics": {"auc": 0.52, "tpr_at_0_1_fpr": 0.012}},
        },
        "report_sha256": report_sha256,
    }


def make_client(project: UIProject, *, insecure: bool = False) -> Any:
    """A TestClient on the dashboard app of ``project`` (https base URL unless ``insecure``)."""
    from fastapi.testclient import TestClient

    from bastion.ui import UIOptions, build

    options = UIOptions(home=str(project.home), insecure=insecure, reports=(str(project.reports),))
    app, _sessions, _home = build(options, passphrase=os.environ["BASTION_PASSPHRASE"])
    base = "http://127.0.0.1" if insecure else "https://127.0.0.1"
    # a peer address as uvicorn gives one (recorded clients are single IP addresses)
    return TestClient(app, base_url=base, follow_redirects=False, client=("127.0.0.1", 50000))


def login(client: Any, token: str) -> Any:
    return client.post(
        "/login", content=f"token={token}", headers={"content-type": "application/x-www-form-urlencoded"}
    )


@pytest.fixture
def ui() -> Any:
    """(make_client, login) for tests in this directory."""
    return make_client, login


@pytest.fixture
def ui_project(tmp_path: Path) -> Iterator[UIProject]:
    home = tmp_path / "home"
    passphrase = os.environ["BASTION_PASSPHRASE"]
    init_project(home=home, passphrase=passphrase, kdf=KdfParams.unsafe_fast()).close()
    vault = open_vault(home=home, passphrase=passphrase)
    try:
        art = tmp_path / "art"
        art.mkdir()
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"w": np.zeros((4, 2), dtype=np.float32)}, str(art / "model.safetensors"))
        v = vault.push(
            art,
            name="fraud",
            env="dev",
            metadata={"dataset": f"train{XSS}.csv"},
            classification="confidential",
        )
        reports = tmp_path / "reports" / "fraud"
        reports.mkdir(parents=True)
        report = {
            "sections": {
                "evasion": {"curves": {"accuracy_vs_eps": [[0.0, 0.95], [0.1, 0.7], [0.3, 0.41]]}},
                "membership": {
                    "curves": {"roc": {"loss": {"fpr": [0.001, 0.1, 1.0], "tpr": [0.012, 0.2, 1.0]}}}
                },
            }
        }
        raw = json.dumps(report).encode()
        (reports / "report.json").write_bytes(raw)
        import hashlib

        from bastion.governance.evidence import attest_audit

        note = attest_audit(vault, v.ref, audit_note(hashlib.sha256(raw).hexdigest()))  # as the runner does
        vault.annotate(v.ref, namespace="audit", data=note)
        vault.annotate(v.ref, namespace="notes", data={"comment": XSS})
        vault.promote(v.ref, to="prod")
        record_run(
            vault.engine,
            job="bastion train",
            inputs=[LineageDataset(FILE_NAMESPACE, f"/data/customers{XSS}.csv", "sha256:" + "ab" * 32)],
            outputs=[LineageDataset(REGISTRY_NAMESPACE, v.ref, v.manifest_digest)],
            facets={},
        )
        # What a gateway and a guard proxy append (the same sink and shapes they use).
        vault.audit.append(
            actor="gateway",
            action="serve:monitor-flag",
            target="fraud",
            outcome="denied",
            details={"identity": "mallory", "reason": f"query burst {XSS}", "action": "block"},
        )
        vault.audit.append(
            actor="gateway",
            action="guard:prompt-blocked",
            target="upstream",
            outcome="denied",
            details={"identity": "eve-id", "score": 0.97, "rule": "injection"},
        )
        vault.audit.append(
            actor="gateway",
            action="serve:requests",
            target="fraud",
            outcome="denied",
            details={
                "requests": [
                    {"identity": "mallory", "decision": "deny:rate", "status": 429},
                    {"identity": "alice", "decision": "allow", "status": 200},
                ],
                "unauthenticated": {"count": 7, "by_decision": {"deny:auth": 7}, "sample": []},
            },
        )
        vault.audit.append(  # a health probe: public, allowed without a token (no alert)
            actor="gateway",
            action="serve:requests",
            target="fraud",
            outcome="ok",
            details={
                "requests": [],
                "unauthenticated": {"count": 1, "by_decision": {"allow": 1}, "sample": []},
            },
        )
        tokens = {}
        for name, role in (
            ("ann", "auditor"),
            ("root", "admin"),
            ("cora", "consumer"),
            ("dan", "data-scientist"),
        ):
            kwargs = {"models": ["fraud"]} if role == "consumer" else {}
            _, tokens[role] = vault.create_token(name=name, role=role, **kwargs)
        yield UIProject(home=home, tokens=tokens, reports=tmp_path / "reports", model_ref=v.ref)
    finally:
        vault.close()
