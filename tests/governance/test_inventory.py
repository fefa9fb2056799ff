"""``bastion inventory`` and :func:`bastion.governance.inventory`: every field from the real evidence."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from typing import Any

import pytest

from bastion.cli import run
from bastion.governance import inventory
from bastion.governance.inventory import COLUMNS

NOW = dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.UTC)


def test_library_inventory_fields(project: Any) -> None:
    good = project.push_model("fraud")
    unsafe = project.push_model("legacy", epsilon=None, watermark=False, allow_unsafe=True, audit={})
    ds = project.vault.push(project.clean_csv, name="train", kind="dataset", classification="internal")
    entries = {e.ref: e for e in inventory(vault=project.vault, now=NOW)}
    assert set(entries) == {good, unsafe, ds.ref}
    e = entries[good]
    assert (e.kind, e.name, e.version, e.env, e.owner) == ("model", "fraud", 1, "dev", "owner")
    assert e.classification == "confidential" and e.signature == "verified" and e.scan == "clean"
    assert (e.audit_grade, e.clean_accuracy, e.robust_accuracy) == ("B", 0.95, 0.55)
    assert (e.mia_tpr_at_0_1_fpr, e.mia_auc, e.extraction_fidelity) == (0.01, 0.52, 0.62)
    assert (e.epsilon, e.delta) == (2.0, 1e-5)
    assert e.watermark == project.commitment(good)
    assert e.training_dataset == "train_clean.csv"
    assert e.lineage_roots == (hashlib.sha256(project.clean_csv.read_bytes()).hexdigest(),)
    assert e.last_verified == NOW.isoformat() and e.error is None and e.endpoints == ()
    u = entries[unsafe]
    assert u.scan == "unsafe-override" and u.epsilon is None and u.watermark is None and u.audit_grade is None
    d = entries[ds.ref]
    assert d.kind == "dataset" and d.classification == "internal" and d.signature == "verified"


def test_cli_inventory_json_csv_table(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    good = project.push_model("fraud")
    assert run(["inventory", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert list(row) == sorted(COLUMNS)  # print_json sorts keys; every column present
    assert row["name"] == "fraud" and row["version"] == 1 and row["kind"] == "model"
    assert row["signature"] == "verified" and row["scan"] == "clean" and row["audit_grade"] == "B"
    assert row["robust_accuracy"] == 0.55 and row["mia_tpr_at_0_1_fpr"] == 0.01 and row["epsilon"] == 2.0
    assert row["watermark"] == project.commitment(good) and row["endpoints"] == [] and row["error"] is None
    assert row["lineage_roots"] == [hashlib.sha256(project.clean_csv.read_bytes()).hexdigest()]
    assert dt.datetime.fromisoformat(row["last_verified"]).tzinfo is not None
    assert run(["inventory", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["name"] == "fraud" and rows[0]["epsilon"] == "2.0"
    assert rows[0]["watermark"] == project.commitment(good) and rows[0]["endpoints"] == ""
    assert run(["inventory"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["kind", "name", "version", "env"]
    assert table[1].split()[:4] == ["model", "fraud", "1", "dev"]
    assert good == "fraud:1"


def test_gateway_deployment_and_endpoints(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project.push_model("fraud", env="prod")
    with (project.home / "bastion.toml").open("a") as fh:
        fh.write('\n[serve]\nhost = "10.0.0.5"\nport = 8443\n')
    assert run(["inventory", "--kind", "deployment", "--format", "json"]) == 0
    (gw,) = json.loads(capsys.readouterr().out)
    assert gw["kind"] == "deployment" and gw["name"] == "gateway"
    assert gw["endpoints"] == ["http://10.0.0.5:8443/v2/models/fraud"]


def test_epsilon_budget_from_the_privacy_ledger(project: Any) -> None:
    from bastion.privacy.ledger import ledger_for_vault

    ledger = ledger_for_vault(project.vault)
    key = "sha256:" + hashlib.sha256(project.clean_csv.read_bytes()).hexdigest()
    ledger.set_budget(key, epsilon=10.0, delta=1e-5)
    with ledger.charge(datasets=key, epsilon=2.0, delta=1e-6, kind="train") as reservation:
        ledger.settle(reservation, epsilon=2.0, delta=1e-6)
    ref = project.push_model("fraud", ledger_dataset=key)
    (e,) = inventory(vault=project.vault, refs=[ref], now=NOW)
    assert (e.epsilon, e.epsilon_budget, e.epsilon_spent) == (2.0, 10.0, 2.0)


def test_inventory_shows_the_served_versions_drift_state(project: Any) -> None:
    from bastion.serve.drift import state_path, write_state

    ref = project.push_model("fraud")
    path = state_path(project.vault.settings.home, "fraud")

    def entry() -> Any:
        return next(e for e in inventory(vault=project.vault, now=NOW) if e.ref == ref)

    assert (entry().drift_state, entry().drift_alerts, entry().drift_updated) == (None, (), None)
    alerts = ["input drift: 3 feature(s) PSI > 0.25"]
    write_state(
        path, {"model": "fraud", "version": "1", "state": "alert", "alerts": alerts, "updated_at": "t"}
    )
    e = entry()
    assert (e.drift_state, e.drift_alerts, e.drift_updated) == ("alert", tuple(alerts), "t")
    assert e.to_dict()["drift_alerts"] == alerts
    write_state(path, {"model": "fraud", "version": "2", "state": "ok", "alerts": []})  # another version
    assert entry().drift_state is None
    path.write_text("{not json", encoding="utf-8")  # unreadable: no state rather than a failure
    assert entry().drift_state is None
