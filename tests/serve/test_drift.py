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
