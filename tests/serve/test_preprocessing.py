"""Issue 14 item 10 at the gateway: a model directory that stores its training preprocessing is served on raw
features. ``load_served_model`` carries the preprocessing, the input guard applies it exactly once, and the
range limits, drift and theft references work in the model's space (documented in bastion.serve.guards)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.serve import Authenticator, Gateway, GatewayConfig
from bastion.serve.config import InputGuardConfig


@dataclass
class Trained:
    directory: Path
    raw_test: np.ndarray
    y_test: np.ndarray
    accuracy: float  # the trained model on the (standardised) test split, as `bastion train` reports it


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    import torch

    from bastion.models.recipes import MlpConfig, build_mlp, load_dataset, save_model, train_model

    torch.set_num_threads(1)
    ds = load_dataset("breast_cancer")
    cfg = MlpConfig(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(16,))
    module = build_mlp(n_features=cfg.n_features, n_classes=cfg.n_classes, hidden=cfg.hidden, seed=0)
    result = train_model(model=module, dataset=ds, epochs=8, lr=0.05, seed=0)
    directory = save_model(
        module, tmp_path_factory.mktemp("bc") / "bc", config=cfg, preprocessing=ds.preprocessing
    )
    assert ds.preprocessing is not None
    raw = ds.preprocessing.invert(ds.x_test)
    from sklearn.datasets import load_breast_cancer

    # the rows really are sklearn's raw rows (areas in the hundreds), not standardised values
    assert float(raw.max()) > 100 and np.isin(raw[:, 3].round(1), load_breast_cancer().data[:, 3]).all()
    return Trained(directory, raw.astype(np.float32), ds.y_test, float(result.accuracy))


def _gateway(project: Any, served: Any, limit: float | None = 30.0) -> Gateway:
    from bastion.serve.server import token_verifier

    # standardised features: the range limits bound the model's space (standard deviations), not raw units
    low = -limit if limit is not None else None
    config = GatewayConfig(input_guard=InputGuardConfig(min_value=low, max_value=limit))
    return Gateway(
        model=served,
        config=config,
        authenticator=Authenticator(verify_token=token_verifier(project.vault)),
        audit=project.vault.audit,
    )


def _accuracy(kit: Any, url: str, token: str, x: np.ndarray, y: np.ndarray) -> float:
    import httpx

    r = httpx.post(
        f"{url}/v2/models/bc/infer", json=kit.infer_body(x), headers=kit.bearer(token), timeout=30.0
    )
    assert r.status_code == 200, r.text
    labels = next(o["data"] for o in r.json()["outputs"] if o["name"] == "label")
    return float(np.mean(np.asarray(labels) == y))


@pytest.mark.slow
def test_raw_rows_through_a_live_gateway_get_the_trained_accuracy(
    project: Any, kit: Any, breast_cancer: Trained
) -> None:
    from bastion.serve.server import load_served_model

    version = project.vault.push(breast_cancer.directory, name="bc")
    _, token = project.vault.create_token(name="bc-consumer", role="consumer", models=["bc"])
    served = load_served_model(vault=project.vault, version=version)
    assert served.preprocessing is not None and served.preprocessing.kind == "standardise"
    with kit.serving(_gateway(project, served)) as server:
        accuracy = _accuracy(kit, server.url, token, breast_cancer.raw_test, breast_cancer.y_test)
    assert accuracy == pytest.approx(breast_cancer.accuracy, abs=1e-9)
    assert accuracy > 0.9
    # the same gateway without the stored preprocessing (what it did before): raw rows are far off
    with kit.serving(_gateway(project, replace(served, preprocessing=None), limit=None)) as server:
        unscaled = _accuracy(kit, server.url, token, breast_cancer.raw_test, breast_cancer.y_test)
    assert unscaled < accuracy - 0.1


def test_the_guard_applies_the_preprocessing_once_and_bounds_the_model_space() -> None:
    from bastion.models.data import Preprocessing
    from bastion.serve.guards import InputGuard
    from bastion.serve.protocol import InferenceRequest

    prep = Preprocessing("scale", (0.0,) * 4, (16.0,) * 4)  # digits-style: raw 0..16 -> 0..1
    guard = InputGuard(config=InputGuardConfig(), input_shape=(4,), preprocessing=prep)

    def request(row: list[float]) -> InferenceRequest:
        return InferenceRequest.model_validate(
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row}]}
        )

    assert guard.batch(request([0.0, 8.0, 16.0, 4.0])).tolist() == [[0.0, 0.5, 1.0, 0.25]]
    with pytest.raises(InvalidInput, match=r"<= 1\.0"):  # 17 raw is above the model space's 1.0
        guard.batch(request([0.0, 8.0, 17.0, 4.0]))
    plain = InputGuard(config=InputGuardConfig(), input_shape=(4,))
    assert plain.batch(request([0.0, 0.5, 1.0, 0.25])).tolist() == [[0.0, 0.5, 1.0, 0.25]]


def test_a_drift_reference_file_holds_raw_rows_like_requests(tmp_path: Path) -> None:
    from bastion.models.adapters import TorchAdapter
    from bastion.models.data import load_dataset
    from bastion.models.recipes import build_mlp
    from bastion.serve.config import DriftSettings
    from bastion.serve.drift_setup import build_monitor

    ds = load_dataset("wine")
    assert ds.preprocessing is not None
    np.savez(tmp_path / "ref.npz", x=ds.preprocessing.invert(ds.x_train))
    adapter = TorchAdapter(build_mlp(n_features=13, n_classes=3, seed=0), input_shape=(13,), n_classes=3)
    common: dict[str, Any] = {"adapter": adapter, "home": tmp_path, "model": "wine", "version": "1"}
    from_file = build_monitor(
        settings=DriftSettings(enabled=True, reference=str(tmp_path / "ref.npz")),
        metadata={},
        preprocessing=ds.preprocessing,
        **common,
    )
    builtin = build_monitor(
        settings=DriftSettings(enabled=True),
        metadata={"dataset": "wine"},
        preprocessing=ds.preprocessing,
        **common,
    )
    assert from_file is not None and builtin is not None
    a, b = from_file.reference, builtin.reference
    assert all(np.allclose(ea, eb, atol=1e-4) for ea, eb in zip(a.edges, b.edges, strict=True))
    assert a.proportions == b.proportions
    # without the model's preprocessing the raw file would be fitted in raw units: visibly different edges
    raw = build_monitor(
        settings=DriftSettings(enabled=True, reference=str(tmp_path / "ref.npz")), metadata={}, **common
    )
    assert raw is not None and not np.allclose(raw.reference.edges[0], b.edges[0], atol=1e-2)


@pytest.mark.slow
def test_encrypted_requests_carry_raw_features_too(project: Any, kit: Any, digits: Any) -> None:
    """The gateway cannot scale ciphertexts: the stored preprocessing is folded into the first layer."""
    import httpx
    import torch

    from bastion.models import TorchAdapter
    from bastion.models.data import load_dataset
    from bastion.privacy.he import HEClient, model_from_torch

    ds = load_dataset("digits")
    assert ds.preprocessing is not None
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Linear(64, 10))
    adapter = TorchAdapter(linear, input_shape=(64,), n_classes=10)
    served = kit.make_gateway(project, digits).model
    served = replace(served, adapter=adapter, preprocessing=ds.preprocessing)
    raw = ds.preprocessing.invert(ds.x_test[:20])
    client = HEClient.for_model(model_from_torch(linear), layout="packed")
    context = client.public_context()
    headers = {"x-bastion-he-context-length": str(len(context)), "content-type": "application/octet-stream"}
    gateway = Gateway(
        model=served, config=GatewayConfig(), authenticator=kit.make_gateway(project, digits).auth, audit=None
    )
    (w, b), *_ = gateway.he_model.layers  # the folded first layer on raw rows = the model on scaled rows
    assert np.allclose(raw @ w.T + b, adapter.logits(ds.x_test[:20]), atol=1e-4)
    with kit.serving(gateway) as server:
        r = httpx.post(
            f"{server.url}/v2/models/digits/he/infer",
            content=context + client.encrypt(raw),
            headers={**headers, **kit.bearer(project.tokens["dave"])},
            timeout=60.0,
        )
    assert r.status_code == 200, r.text
    assert np.array_equal(client.decrypt(r.content).argmax(axis=1), adapter.predict(ds.x_test[:20]))


@pytest.mark.slow
def test_watermark_verify_url_sends_the_trigger_set_as_raw_features(
    project: Any,
    kit: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Our own gateway serving our watermarked registry model scales what it gets: ``verify --url`` maps the
    trigger set (the model's space) back to raw features, so the gateway lands exactly on the triggers."""
    import json

    from bastion.cli import run
    from bastion.serve.server import load_served_model

    from .conftest import PASSPHRASE

    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    home = ["--home", str(project.home)]
    assert run(["watermark", "keygen", *home, "--format", "json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    train = [
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "20",
        "--watermark-key",
        key_id,
        "--push",
        "wm-digits",
    ]
    assert run([*train, *home]) == 0
    capsys.readouterr()
    version = project.vault.show("wm-digits:1")
    served = load_served_model(vault=project.vault, version=version)
    assert served.preprocessing is not None and served.preprocessing.kind == "scale"
    _, token = project.vault.create_token(name="wm-investigator", role="consumer", models=["wm-digits"])
    monkeypatch.setenv("WM_R4_TOKEN", token)
    with kit.serving(_gateway(project, served, limit=None)) as server:
        argv = ["watermark", "verify", "--url", server.url, "--model-name", "wm-digits"]
        code = run([*argv, "--bearer-env", "WM_R4_TOKEN", "--key-id", key_id, *home, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["verdict"] == "owned", doc
