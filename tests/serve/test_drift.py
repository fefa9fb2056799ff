"""Live drift monitoring: a real model on real data; shifted inputs raise the alert, unshifted ones do not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from bastion.errors import InvalidInput
from bastion.serve.drift import DriftConfig, DriftMonitor, DriftReference, psi


@pytest.fixture(scope="module")
def setup() -> tuple[LogisticRegression, np.ndarray, np.ndarray, DriftReference]:
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, _ = train_test_split(x, y, test_size=0.4, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=300).fit(x_tr, y_tr)
    ref = DriftReference.fit(x=x_tr, probs=model.predict_proba(x_tr))
    return model, x_tr, x_te, ref


def _feed(monitor: DriftMonitor, model: LogisticRegression, x: np.ndarray) -> None:
    for start in range(0, len(x), 64):  # batches, as the gateway would see them
        monitor.observe(x[start : start + 64], model.predict_proba(x[start : start + 64]))


def test_unshifted_traffic_raises_no_alert(setup) -> None:  # type: ignore[no-untyped-def]
    model, _, x_te, ref = setup
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=700, min_samples=200))
    _feed(monitor, model, x_te)
    r = monitor.report()
    assert r.samples == 700 and r.alerts == ()
    assert r.max_feature_psi < 0.25 and r.prediction_psi < 0.1


def test_shifted_inputs_raise_the_alert(setup) -> None:  # type: ignore[no-untyped-def]
    model, _, x_te, ref = setup
    rng = np.random.default_rng(0)
    shifted = np.clip(x_te + rng.normal(4.0, 2.0, size=x_te.shape), 0, 16)  # a brighter, noisier sensor
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=700, min_samples=200))
    _feed(monitor, model, shifted)
    r = monitor.report()
    assert any(a.startswith("input drift") for a in r.alerts)
    assert r.max_feature_psi > 1.0
    gauges = monitor.metrics("digits")
    assert gauges['bastion_drift_alerts{model="digits"}'] >= 1.0


def test_prediction_shift_and_confidence_collapse(setup) -> None:  # type: ignore[no-untyped-def]
    model, _, x_te, ref = setup
    only_zeros = x_te[model.predict(x_te) == 0]
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=200, min_samples=20))
    _feed(monitor, model, np.repeat(only_zeros, 4, axis=0)[:200])
    assert any(a.startswith("prediction shift") for a in monitor.report().alerts)
    faint = x_te[:300] * 0.1  # a failing sensor: faint strokes the model is unsure about
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=300, min_samples=100))
    _feed(monitor, model, faint)
    assert any(a.startswith("confidence collapse") for a in monitor.report().alerts)


def test_small_windows_stay_quiet_and_bad_input_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    model, _, x_te, ref = setup
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=700, min_samples=200))
    _feed(monitor, model, np.clip(x_te[:50] + 8, 0, 16))
    assert monitor.report().alerts == ()  # under min_samples: no alert yet
    with pytest.raises(InvalidInput):
        monitor.observe(x_te[:3, :10], model.predict_proba(x_te[:3]))
    assert DriftReference.from_dict(ref.to_dict()) == ref
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.0)


def test_gateway_publishes_drift_and_alerts_on_shifted_traffic(kit, project, digits) -> None:  # type: ignore[no-untyped-def]
    """Through a real gateway on 127.0.0.1: unshifted traffic raises no alert, shifted traffic does."""
    import httpx

    ref = DriftReference.fit(x=digits.x_train, probs=digits.adapter.predict_proba(digits.x_train))

    def scrape(client: httpx.Client) -> dict[str, float]:
        r = client.get("/metrics", headers=kit.bearer(project.tokens["dave"]))
        assert r.status_code == 200
        return {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in r.text.splitlines()
            if line.startswith("bastion_drift_") and 'model="digits"' in line
        }

    rng = np.random.default_rng(0)
    for shift, expect_alert in ((False, False), (True, True)):
        monitor = DriftMonitor(reference=ref, config=DriftConfig(window=300, min_samples=200))
        gateway = kit.make_gateway(project, digits, drift=monitor)
        with kit.serving(gateway) as server, httpx.Client(base_url=server.url) as client:
            x = digits.x_test[rng.permutation(len(digits.x_test))[:300]]
            if shift:
                x = np.clip(x + 0.35, 0.0, 1.0).astype(np.float32)  # a miscalibrated sensor
            for start in range(0, 300, 50):
                r = client.post(
                    "/v2/models/digits/infer",
                    json=kit.infer_body(x[start : start + 50]),
                    headers=kit.bearer(project.tokens["alice"]),
                )
                assert r.status_code == 200, r.text
            gauges = scrape(client)
        assert gauges["bastion_drift_samples"] == 300.0
        assert (gauges["bastion_drift_alerts"] > 0) is expect_alert, gauges
        assert (gauges["bastion_drift_feature_psi_max"] > 0.25) is expect_alert


# --- From bastion.toml/--config through a real gateway on 127.0.0.1 to /metrics, the audit log and inventory.

PASSPHRASE = "serve tests passphrase"  # the session project's (tests/serve/conftest.py)


def _drift_config(path, **extra: object) -> str:  # type: ignore[no-untyped-def]
    lines = [
        "[serve.drift]",
        "enabled = true",
        "window = 300",
        "min_samples = 150",
        "check_every = 50",
        *(f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()),
        '[serve.rate_limit.per_role]\nconsumer = "100000/minute"',
        '[serve.rate_limit.rows_per_role]\nconsumer = "1000000/minute"',
        '[serve.monitor]\naction = "alert"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _drift_events(project, start: int) -> list:  # type: ignore[no-untyped-def]
    return [e for e in project.vault.audit.entries(start=start) if e.action == "serve:drift-alert"]


def _inventory_row(project, name: str, capsys) -> dict:  # type: ignore[no-untyped-def]
    import json

    from bastion.cli import run as cli_run

    capsys.readouterr()
    assert cli_run(["inventory", "--kind", "model", "--home", str(project.home), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return next(r for r in rows if r["name"] == name)


def test_gateway_from_config_alerts_on_shifted_traffic_only(  # type: ignore[no-untyped-def]
    kit, project, digits, tmp_path, capsys, monkeypatch
) -> None:
    import httpx

    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)

    from bastion.models.data import load_dataset
    from bastion.serve import ServeOptions, build_gateway
    from bastion.serve.server import approve_gateway

    ds = load_dataset("digits")  # what the session model was trained on (seed 0): its recorded lineage
    version = project.vault.push(
        digits.directory,
        name="digits-drift",
        metadata={"dataset": "digits", "dataset_digest": ds.digest()},
    )
    _, token = project.vault.create_token(name="drift-consumer", role="consumer", models=["digits-drift"])
    config = _drift_config(tmp_path / "gw.toml")
    options = ServeOptions(model_ref=version.ref, home=str(project.home), config_file=config)
    approve_gateway(options, passphrase=PASSPHRASE)
    gateway = build_gateway(options, passphrase=PASSPHRASE)
    assert gateway.drift is not None and gateway.drift.labels["reference"] == "builtin:digits"
    assert gateway.drift.labels["reference_verified"] is True
    start = project.vault.audit.size()
    auditor = kit.bearer(project.tokens["carol"])

    def alerts(client: httpx.Client) -> float:
        text = client.get("/metrics", headers=auditor).text
        line = next(
            s for s in text.splitlines() if s.startswith('bastion_drift_alerts{model="digits-drift"}')
        )
        return float(line.rsplit(" ", 1)[1])

    rng = np.random.default_rng(0)
    shifted = np.clip(digits.x_test + rng.normal(0.3, 0.1, size=digits.x_test.shape), 0.0, 1.0)
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:

        def send(x: np.ndarray) -> None:
            for chunk in np.array_split(x, len(x) // 50):
                resp = client.post(
                    "/v2/models/digits-drift/infer", json=kit.infer_body(chunk), headers=kit.bearer(token)
                )
                assert resp.status_code == 200, resp.text

        send(digits.x_test[:400])  # unshifted held-out traffic: no alert
        assert alerts(client) == 0.0
        assert _inventory_row(project, "digits-drift", capsys)["drift_state"] == "ok"
        send(shifted[:400])  # a brighter, noisier sensor: input drift
        assert alerts(client) >= 1.0
        send(shifted[:200])  # still shifted: no new audit entry (one per transition)
    gateway.close()
    events = _drift_events(project, start)
    assert len(events) == 1, [e.details for e in events]
    assert "input" in events[0].details["raised"] and events[0].details["model"] == "digits-drift"
    row = _inventory_row(project, "digits-drift", capsys)
    assert row["drift_state"] == "alert" and any(a.startswith("input drift") for a in row["drift_alerts"])
    assert row["drift_updated"]


def test_drift_without_a_reference_refuses_to_start(  # type: ignore[no-untyped-def]
    project, digits, tmp_path, capsys, monkeypatch
) -> None:
    from bastion.cli import run as cli_run

    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    version = project.vault.push(digits.directory, name="drift-noref")  # no recorded training data
    config = _drift_config(tmp_path / "gw.toml")
    args = ["serve", version.ref, "--home", str(project.home), "--config", config]
    assert cli_run([*args, "--approve"]) == 0
    capsys.readouterr()
    assert cli_run([*args, "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [serve.drift] is enabled but no training reference was found")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # A reference file fixes it; a wrong one is refused with its own one-line error.
    good = tmp_path / "ref.npz"
    np.savez(good, x=digits.x_train)
    for ref, code in ((tmp_path / "missing.npz", 2), (good, 0)):
        config = _drift_config(tmp_path / "gw.toml", reference=str(ref))
        args = ["serve", version.ref, "--home", str(project.home), "--config", config]
        assert cli_run([*args, "--approve"]) == 0
        capsys.readouterr()
        assert cli_run([*args, "--check"]) == code, capsys.readouterr().err


def test_drift_config_is_checked() -> None:
    from bastion.errors import ConfigError
    from bastion.serve.config import config_from_mapping

    assert config_from_mapping({}).drift.enabled is False
    with pytest.raises(ConfigError, match=r"\[serve.drift\] window"):
        config_from_mapping({"drift": {"enabled": True, "window": 5}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_mapping({"drift": {"threshold": 0.2}})
    with pytest.raises(ConfigError, match="feature_psi_alert"):
        config_from_mapping({"drift": {"feature_psi_alert": -1}})


def test_alert_transition_is_a_structured_warning(project, digits) -> None:  # type: ignore[no-untyped-def]
    import io
    import json
    import logging

    from bastion.serve import Authenticator, Gateway, GatewayConfig, ServedModel
    from bastion.serve.observability import JsonFormatter

    stream = io.StringIO()
    logger = logging.getLogger("bastion.test.drift")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    adapter = digits.adapter
    ref = DriftReference.fit(x=digits.x_train, probs=adapter.predict_proba(digits.x_train))
    monitor = DriftMonitor(reference=ref, config=DriftConfig(window=100, min_samples=50, check_every=50))
    gateway = Gateway(
        model=ServedModel(name="digits", version="1", adapter=adapter, digest="sha256:test", env="dev"),
        config=GatewayConfig(),
        authenticator=Authenticator(verify_token=lambda _t: None),
        audit=None,
        logger=logger,
        drift=monitor,
    )
    shifted = np.clip(digits.x_test[:100] + 0.5, 0.0, 1.0)
    assert monitor.observe(digits.x_test[:49], adapter.predict_proba(digits.x_test[:49])) is None
    changes = [
        monitor.observe(shifted[i : i + 50], adapter.predict_proba(shifted[i : i + 50])) for i in (0, 50)
    ]
    change = next(c for c in changes if c is not None)
    assert change.raised and not change.cleared
    gateway.drift_changed(change)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert (line["level"], line["event"], line["model"]) == ("warning", "drift-alert", "digits")
    assert "input drift" in line["reason"]
    gateway.close()
