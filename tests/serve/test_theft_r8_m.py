"""Round-8 fix of the theft defence (issue 20, attack20b F3): an admin can clear a theft flag. Before, the
admin reset (``POST /admin/clients/{client}/reset``) reset only the PRADA monitor and nothing called
``TheftDefence.reset``, so a falsely flagged customer stayed misinformed for as long as it kept working. Now
the reset clears the identity's flag and suspicion (and, with ``?address=``, its address's), keeps the
evidence (recorded watermark probes, label marks), needs the admin role and is audit-logged."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from .test_theft import make_defence


def _labels(client: Any, kit: Any, x: np.ndarray, token: str) -> np.ndarray:
    out = kit.infer_outputs(client, x, token)
    return np.asarray(out["top_k_labels"]["data"]).reshape(len(x), -1)[:, 0]


def test_an_admin_reset_clears_a_theft_flag_and_keeps_the_evidence(
    project: Any, digits: Any, kit: Any
) -> None:
    guard = make_defence(digits)
    gw = kit.make_gateway(project, digits, theft=guard)
    alice, dave = project.tokens["alice"], kit.bearer(project.tokens["dave"])
    natural = digits.x_test[:300]
    truth = digits.adapter.predict(natural)
    start_audit = project.vault.audit.size()
    with kit.serving(gw) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, 100, 20):  # natural rows first: its watermark probes (the evidence)
            assert np.array_equal(
                _labels(client, kit, natural[start : start + 20], alice), truth[start : start + 20]
            )
        rng = np.random.default_rng(3)
        for _ in range(4):  # then random rows: flagged, and every answer misinformed
            _labels(client, kit, rng.random((20, 64), dtype=np.float32), alice)
        flags = client.get("/admin/theft", headers=dave).json()["flags"]
        consumer = next(f["consumer"] for f in flags if not f["consumer"].startswith("addr:"))
        address = next(c for c in guard.consumers() if c.startswith("addr:"))[len("addr:") :]
        before = client.get("/admin/theft/evidence", headers=dave).json()
        probes = before["consumers"][consumer]["rows"]
        assert probes >= 30
        # flagged: its natural rows are misinformed too
        assert (_labels(client, kit, natural[100:140], alice) == truth[100:140]).mean() <= 0.5
        # only an admin may reset (a consumer and an auditor are refused); an address is named explicitly
        url = f"/admin/clients/{consumer}/reset"
        assert client.post(url, headers=kit.bearer(alice)).status_code == 403
        assert client.post(url, headers=kit.bearer(project.tokens["carol"])).status_code == 403
        assert {f["consumer"] for f in client.get("/admin/theft", headers=dave).json()["flags"]} >= {consumer}
        r = client.post(url, params={"address": address}, headers=dave)
        assert r.status_code == 200, r.text
        assert client.get("/admin/theft", headers=dave).json()["flags"] == []
        assert r.json()["theft"][consumer] == flags[0]["reason"] and f"addr:{address}" in r.json()["theft"]
        # its next natural rows are answered as the model answers them
        for start in range(140, 300, 20):
            got = _labels(client, kit, natural[start : start + 20], alice)
            assert np.array_equal(got, truth[start : start + 20])
        assert client.get("/admin/theft", headers=dave).json()["flags"] == []
        # the evidence still holds its probes (a reset does not erase proof of theft)
        after = client.get("/admin/theft/evidence", headers=dave).json()
        assert after["consumers"][consumer]["rows"] >= probes
        assert client.post(f"/admin/clients/addr:{address}/reset", headers=dave).status_code == 400
    events = [e for e in project.vault.audit.entries(start=start_audit) if e.action == "serve:theft-reset"]
    assert events and events[-1].details["by"] == "dave" and consumer in events[-1].details["consumers"]


def test_a_reset_hands_out_no_new_daily_budget(digits: Any) -> None:
    from bastion.errors import BudgetExhausted
    from bastion.serve.theft import TheftPolicy

    guard = make_defence(digits, policy=TheftPolicy(daily_rows=60))
    x = digits.x_test[:40]
    guard.respond(consumers=("carol",), x=x, proba=digits.adapter.predict_proba(x))
    guard.reset("carol")
    with pytest.raises(BudgetExhausted):
        guard.respond(consumers=("carol",), x=x, proba=digits.adapter.predict_proba(x))
