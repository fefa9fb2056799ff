"""`bastion audit --attacks extraction` against a live defended gateway (issue 20, item 6): a user measures
their own deployment. Same run, same model, same data: the defended gateway vs an undefended one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.cli import run
from bastion.serve import GatewayConfig
from bastion.serve.config import MonitorConfig, RateLimitConfig

from .conftest import Digits, Project, make_gateway, serving
from .test_theft import make_defence


@pytest.mark.slow
def test_audit_extraction_measures_the_defended_gateway_against_an_undefended_one(
    project: Project, digits: Digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    data = tmp_path / "attacker-data.npz"
    np.savez(data, x=digits.x_test[:200], y=digits.y_test[:200])
    monkeypatch.setenv("BASTION_TEST_CONSUMER_TOKEN", project.tokens["alice"])  # a consumer, not an admin
    metrics = {}
    # the audit sends ~1,000 rows within a minute: the row limit (which bounds theft by rate) is raised so
    # that what is measured is the defence's answers, not the limiter
    limits = RateLimitConfig(
        per_role={"consumer": "10000/minute"}, rows_per_role={"consumer": "100000/minute"}
    )
    gateways = {
        "undefended": make_gateway(
            project, digits, GatewayConfig(monitor=MonitorConfig(enabled=False), rate_limit=limits)
        ),
        "defended": make_gateway(
            project, digits, GatewayConfig(rate_limit=limits), theft=make_defence(digits)
        ),
    }
    for name, gateway in gateways.items():
        with serving(gateway) as server:
            out = tmp_path / name
            code = run(
                [
                    "audit",
                    "--model",
                    f"{server.url}/v2/models/digits",
                    "--data",
                    str(data),
                    "--attacks",
                    "extraction",
                    "--n-classes",
                    "10",
                    "--clip",
                    "0,1",
                    "--bearer-env",
                    "BASTION_TEST_CONSUMER_TOKEN",
                    "--out",
                    str(out),
                ]
            )
            captured = capsys.readouterr()
            assert code in (0, 1), captured.err  # 1: a finding (the grade), not an error
            assert project.tokens["alice"] not in captured.out + captured.err
        report = json.loads((out / "report.json").read_text())
        section = report["sections"]["extraction"]
        assert section["status"] == "ok"
        metrics[name] = {**section["metrics"], "curves": section["curves"]["fidelity_vs_queries"]}
    # The audit's fidelity is agreement with the endpoint it queries; against a defended endpoint that
    # misinforms a flagged consumer, the endpoint's own answers on the audit's evaluation rows are wrong too,
    # so the measure that means something is the copy's accuracy on the true labels ([queries, fid, acc]).
    plain, guarded = metrics["undefended"], metrics["defended"]
    assert plain["curves"]["random"][-1][2] >= 0.4 and plain["victim_accuracy"] >= 0.9
    assert guarded["curves"]["random"][-1][2] <= 0.2  # random queries: flagged, misinformed, copy worthless
    # once flagged (by the random run, same token) every answer to this consumer is misinformed: the
    # natural-data copy made afterwards is worthless too, and the consumer sees a wrong model
    assert guarded["curves"]["knockoff"][-1][2] <= 0.2 and guarded["victim_accuracy"] <= 0.2
