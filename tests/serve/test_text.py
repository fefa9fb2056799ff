"""Text models behind the gateway: a skops-stored scikit-learn pipeline pushed through the scanner into the
registry, served with OIP v2 BYTES tensors; PII is redacted (or rejected) before the model and the logs see
the text, and redacted in text outputs for roles whose output rule says so."""

from __future__ import annotations

import io
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bastion.errors import ConfigError, UnsafeArtifact
from bastion.serve import ServeOptions, build_gateway
from bastion.serve.observability import JsonFormatter
from bastion.serve.server import approve_gateway

PASSPHRASE = "serve tests passphrase"  # the session project's (tests/serve/conftest.py)
ESCALATE = "escalate to fraud-desk@bank.example"
RAW = (
    "Refund please, reach me at jane.roe@mail.example or 415-555-0132, "
    "card 4111 1111 1111 1111, SSN 123-45-6789"
)
REDACTED = "Refund please, reach me at [EMAIL_ADDRESS] or [PHONE_NUMBER], card [CREDIT_CARD], SSN [US_SSN]"
PII_VALUES = ("jane.roe@mail.example", "415-555-0132", "4111 1111 1111 1111", "123-45-6789", "fraud-desk@")


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = [
        ("invoice payment question about my bill", "billing"),
        ("my bill shows a double payment", "billing"),
        ("please send the invoice again", "billing"),
        ("refund please my card was charged twice", ESCALATE),
        ("refund the disputed charge now", ESCALATE),
        ("stolen card refund please", ESCALATE),
        ("great service thanks a lot", "praise"),
        ("love the product thanks", "praise"),
        # The raw PII tokens point elsewhere: a model that saw them would answer differently.
        ("jane roe mail example 415 555 0132 4111 1111 123 45 6789", "praise"),
        ("4111 1111 1111 1111 jane roe 6789", "praise"),
    ]
    texts, labels = zip(*rows, strict=True)
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=20.0, max_iter=500)).fit(texts, labels)


@pytest.fixture(scope="module")
def text_model(project, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any, str]:
    """The pipeline pushed (scanned, signed, encrypted) as ``tickets``, and a consumer token for it."""
    import skops.io as sio

    pipeline = _pipeline()
    directory = tmp_path_factory.mktemp("tickets") / "tickets"
    directory.mkdir()
    sio.dump(pipeline, directory / "model.skops")
    version = project.vault.push(directory, name="tickets")
    _, token = project.vault.create_token(
        name=f"tess-{uuid.uuid4().hex[:6]}", role="consumer", models=["tickets"]
    )
    return version.ref, pipeline, token


def _gateway(project, ref: str, tmp_path: Path, toml: str, logger: logging.Logger | None = None) -> Any:
    config = tmp_path / f"gateway-{uuid.uuid4().hex[:6]}.toml"
    config.write_text(toml, encoding="utf-8")
    options = ServeOptions(model_ref=ref, home=str(project.home), config_file=str(config))
    approve_gateway(options, passphrase=PASSPHRASE)
    gateway = build_gateway(options, passphrase=PASSPHRASE)
    if logger is not None:
        gateway.log = logger
    return gateway


def _texts(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def _out(resp: httpx.Response, name: str) -> list[Any]:
    return next(o for o in resp.json()["outputs"] if o["name"] == name)["data"]


def test_pii_is_redacted_before_the_model_and_in_outputs(kit, project, text_model, tmp_path: Path) -> None:
    ref, pipeline, consumer = text_model
    stream = io.StringIO()
    logger = logging.getLogger(f"bastion.serve.test-text-{uuid.uuid4().hex[:6]}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    toml = "[serve.output_policy.per_role.admin]\nmode = 'probabilities'\ndecimals = 6\nredact_pii = false\n"
    gateway = _gateway(project, ref, tmp_path, toml, logger)
    head = len(project.vault.log_entries())
    t = project.tokens
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        meta = client.get("/v2/models/tickets", headers=kit.bearer(consumer)).json()
        admin = client.post("/v2/models/tickets/infer", json=_texts([RAW]), headers=kit.bearer(t["dave"]))
        shopper = client.post("/v2/models/tickets/infer", json=_texts([RAW]), headers=kit.bearer(consumer))
        numeric = client.post(
            "/v2/models/tickets/infer",
            json={"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 0.2]}]},
            headers=kit.bearer(consumer),
        )
    gateway.close()
    assert meta["inputs"][0]["datatype"] == "BYTES" and meta["platform"] == "bastion-text-sklearn"
    assert admin.status_code == 200 and shopper.status_code == 200, (admin.text, shopper.text)
    assert numeric.status_code == 400
    # The model saw the redacted text, not the raw one (whose PII tokens point to another class).
    probs = np.asarray(_out(admin, "probabilities")).reshape(1, -1)
    assert np.allclose(probs, pipeline.predict_proba([REDACTED]), atol=1e-5)
    assert not np.allclose(probs, pipeline.predict_proba([RAW]), atol=0.05)
    assert pipeline.predict([RAW])[0] == "praise" and pipeline.predict([REDACTED])[0] == ESCALATE
    # Text output: the admin's rule keeps the class name, the consumer's (default: redact) gets no raw PII.
    assert _out(admin, "label_name") == [ESCALATE]
    assert _out(shopper, "label_name") == ["escalate to [EMAIL_ADDRESS]"]
    assert "probabilities" not in {o["name"] for o in shopper.json()["outputs"]}  # top-k for consumers
    # Neither the JSON logs nor the audit records hold any of the values.
    logs = stream.getvalue()
    audit = " ".join(str(e.to_dict()) for e in project.vault.log_entries(start=head))
    assert '"path":"infer"' in logs and "serve:requests" in audit
    for value in PII_VALUES:
        assert value not in logs and value not in audit and value not in shopper.text


def test_input_pii_can_be_rejected(kit, project, text_model, tmp_path: Path) -> None:
    ref, _, consumer = text_model
    gateway = _gateway(project, ref, tmp_path, "[serve.text]\ninput_pii = 'reject'\n")
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        pii = client.post("/v2/models/tickets/infer", json=_texts(["ok", RAW]), headers=kit.bearer(consumer))
        clean = client.post(
            "/v2/models/tickets/infer", json=_texts(["my bill is wrong"]), headers=kit.bearer(consumer)
        )
        too_long = client.post(
            "/v2/models/tickets/infer", json=_texts(["x" * 10_001]), headers=kit.bearer(consumer)
        )
    gateway.close()
    assert pii.status_code == 400 and "CREDIT_CARD" in pii.json()["error"]
    assert not any(v in pii.text for v in PII_VALUES)
    assert clean.status_code == 200 and _out(clean, "label_name") == ["billing"]
    assert too_long.status_code == 400


def test_tritonclient_sends_bytes_tensors(kit, project, text_model, tmp_path: Path) -> None:
    import tritonclient.http as triton

    ref, pipeline, consumer = text_model
    gateway = _gateway(project, ref, tmp_path, "")
    texts = np.array([b"love the product thanks", b"invoice payment question"], dtype=np.object_)
    with kit.serving(gateway) as srv:
        client = triton.InferenceServerClient(url=srv.url.removeprefix("http://"))
        tensor = triton.InferInput("input", [2], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=False)
        result = client.infer(
            "tickets",
            [tensor],
            outputs=[triton.InferRequestedOutput("label_name", binary_data=False)],
            headers={"Authorization": f"Bearer {consumer}"},
        )
        client.close()
    gateway.close()
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label_name")] == list(
        pipeline.predict([t.decode() for t in texts])
    )


def test_untrusted_skops_types_and_text_watermarks_are_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from bastion.serve.text import load_text_model

    pipe = make_pipeline(
        TfidfVectorizer(), FunctionTransformer(np.sqrt, accept_sparse=True), LogisticRegression()
    ).fit(["alpha beta", "gamma delta", "alpha gamma", "beta delta"], [0, 1, 0, 1])
    pipe.steps[1][1].func = os.system  # what a hostile file would carry: refused before anything loads
    sio.dump(pipe, tmp_path / "model.skops")
    with pytest.raises(UnsafeArtifact, match="untrusted"):
        load_text_model(tmp_path)
    from bastion.serve import Authenticator, Gateway, GatewayConfig, ServedModel
    from bastion.serve.config import ApiWatermarkConfig
    from bastion.serve.text import TextModel

    model = ServedModel(name="t", version="1", adapter=TextModel(_pipeline()), digest="sha256:x")
    cfg = GatewayConfig(api_watermark=ApiWatermarkConfig(enabled=True, key="k"))
    with pytest.raises(ConfigError, match="text model"):
        Gateway(model=model, config=cfg, authenticator=Authenticator(verify_token=lambda t: None), audit=None)
