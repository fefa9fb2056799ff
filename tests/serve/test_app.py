"""The gateway over a real uvicorn server on 127.0.0.1: authorization matrix, OIP v2 with tritonclient, TLS,
input guard, output policy, monitor actions, audit records and logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import ssl
from pathlib import Path
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.errors import ConfigError
from bastion.serve.auth import JwtVerifier
from bastion.serve.config import ApiWatermarkConfig, GatewayConfig, JwtConfig, MonitorConfig, RateLimitConfig
from bastion.serve.observability import JsonFormatter
from bastion.serve.tls import self_signed_certificate

ISSUER = "https://idp.example.test"
AUDIENCE = "bastion-gateway"


@pytest.fixture(scope="module")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("jwt") / "idp.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, path


def _jwt(key: Any, *, minutes: int = 5, **claims: Any) -> str:
    now = dt.datetime.now(dt.UTC)
    body = {"sub": "svc-1", "iss": ISSUER, "aud": AUDIENCE, "exp": now + dt.timedelta(minutes=minutes)}
    body.update({"role": "consumer", "models": ["digits"]})
    body.update(claims)
    return jwt.encode(body, key, algorithm="ES256")


@pytest.fixture(scope="module")
def server(kit, project, digits, jwt_keys):
    _, pub = jwt_keys
    jwt_cfg = JwtConfig(public_key_file=str(pub), issuer=ISSUER, audience=AUDIENCE)
    cfg = GatewayConfig(jwt=jwt_cfg)
    gateway = kit.make_gateway(project, digits, cfg, jwt=JwtVerifier(jwt_cfg))
    with kit.serving(gateway) as srv:
        yield srv


def test_authorization_matrix(kit, server, project, digits, jwt_keys) -> None:
    key, _ = jwt_keys
    other_key = ec.generate_private_key(ec.SECP256R1())
    t = project.tokens
    body = kit.infer_body(digits.x_test[:1])
    cases: list[tuple[str, dict[str, str], int]] = [
        ("no token", {}, 401),
        ("bad token", kit.bearer("bst_" + "A" * 43), 401),
        ("not a bearer", {"Authorization": "Basic YWxpY2U6cHc="}, 401),
        ("expired JWT", kit.bearer(_jwt(key, minutes=-5)), 401),
        ("JWT wrong audience", kit.bearer(_jwt(key, aud="someone-else")), 401),
        ("JWT wrong issuer", kit.bearer(_jwt(key, iss="https://evil.test")), 401),
        ("JWT foreign key", kit.bearer(_jwt(other_key)), 401),
        ("wrong role (auditor)", kit.bearer(t["carol"]), 403),
        ("wrong model (consumer of another model)", kit.bearer(t["bob"]), 403),
        ("JWT wrong model", kit.bearer(_jwt(key, models=["fraud"])), 403),
        ("right role (consumer)", kit.bearer(t["alice"]), 200),
        ("right role (JWT consumer)", kit.bearer(_jwt(key)), 200),
        ("right role (admin)", kit.bearer(t["dave"]), 200),
    ]
    with httpx.Client(base_url=server.url) as client:
        for name, headers, status in cases:
            r = client.post("/v2/models/digits/infer", json=body, headers=headers)
            assert r.status_code == status, name
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
        # Metadata: the auditor may read it, the consumer of another model may not.
        assert client.get("/v2/models/digits", headers=kit.bearer(t["carol"])).status_code == 200
        assert client.get("/v2/models/digits/ready", headers=kit.bearer(t["bob"])).status_code == 403
        # A model that is not served: 404 only for those who could see it, 403 for others.
        assert client.get("/v2/models/other-model", headers=kit.bearer(t["bob"])).status_code == 404
        assert client.get("/v2/models/other-model", headers=kit.bearer(t["alice"])).status_code == 403
        # Admin endpoints: admin and auditor only.
        for path in ("/admin/monitor", "/admin/clients", "/metrics"):
            assert client.get(path, headers=kit.bearer(t["alice"])).status_code == 403
            assert client.get(path, headers=kit.bearer(t["erin"])).status_code == 403
            assert client.get(path, headers=kit.bearer(t["carol"])).status_code == 200
            assert client.get(path, headers=kit.bearer(t["dave"])).status_code == 200
            assert client.get(path).status_code == 401
        assert client.post("/admin/clients/x/reset", headers=kit.bearer(t["carol"])).status_code == 403
        assert client.post("/admin/clients/x/reset", headers=kit.bearer(t["dave"])).status_code == 200
        # Health is public (probes), nothing else is.
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}


def test_tritonclient_speaks_to_the_gateway(kit, server, project, digits) -> None:
    import tritonclient.http as triton

    headers = kit.bearer(project.tokens["alice"])
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("digits", headers=headers)
        meta = client.get_model_metadata("digits", headers=headers)
        assert meta["name"] == "digits" and meta["inputs"][0]["shape"] == [-1, 64]
        x = digits.x_test[:8]
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        outputs = [
            triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "top_k_probabilities")
        ]
        result = client.infer("digits", [tensor], outputs=outputs, headers=headers)
        labels = result.as_numpy("label")
        assert np.array_equal(labels, digits.adapter.predict(x))
        top = result.as_numpy("top_k_probabilities")
        assert top.shape == (8, 3) and np.allclose(top, np.round(top, 3))
        with pytest.raises(Exception, match=r"401|credentials"):
            client.infer("digits", [tensor], outputs=outputs)
    finally:
        client.close()


def test_output_policy_by_role(kit, server, project, digits) -> None:
    x = digits.x_test[:4]
    with httpx.Client(base_url=server.url) as client:
        consumer = client.post(
            "/v2/models/digits/infer", json=kit.infer_body(x), headers=kit.bearer(project.tokens["alice"])
        )
        admin = client.post(
            "/v2/models/digits/infer", json=kit.infer_body(x), headers=kit.bearer(project.tokens["dave"])
        )
        only = client.post(
            "/v2/models/digits/infer",
            json=kit.infer_body(x, outputs=["label", "probabilities"]),
            headers=kit.bearer(project.tokens["alice"]),
        )
        bad = client.post(
            "/v2/models/digits/infer",
            json=kit.infer_body(x, outputs=["logits"]),
            headers=kit.bearer(project.tokens["dave"]),
        )
    names = {o["name"]: o for o in consumer.json()["outputs"]}
    assert set(names) == {"top_k_labels", "top_k_probabilities", "label"}
    assert names["top_k_labels"]["shape"] == [4, 3]
    assert all(round(v, 3) == v for v in names["top_k_probabilities"]["data"])
    full = {o["name"]: o for o in admin.json()["outputs"]}
    proba = np.asarray(full["probabilities"]["data"]).reshape(4, 10)
    assert np.allclose(proba, digits.adapter.predict_proba(x), atol=1e-6)
    # A consumer asking for full probabilities gets only what its policy allows.
    assert [o["name"] for o in only.json()["outputs"]] == ["label"]
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b["inputs"][0].update(shape=[1, 65], data=[0.1] * 65), 400),
        (lambda b: b["inputs"][0].update(data=[2.0] * 64), 400),
        (lambda b: b["inputs"][0].update(data=[-0.5] * 64), 400),
        (lambda b: b["inputs"][0].update(data=["a"] * 64), 400),
        (lambda b: b["inputs"][0].update(data=[0.1] * 63), 400),
        (lambda b: b["inputs"][0].update(datatype="BYTES"), 400),
        (lambda b: b["inputs"][0].update(shape=[300, 64], data=[0.1] * 300 * 64), 400),
        (lambda b: b["inputs"][0].update(shape=[-1, 64]), 400),
        (lambda b: b.update(inputs=[]), 400),
        (lambda b: b.update(extra=1), 400),
        (lambda b: b["inputs"][0].update(datatype="INT32", data=[1.5] * 64), 400),
        (lambda b: b["inputs"][0].update(datatype="UINT8", data=[1] * 64), 200),
    ],
)
def test_input_guard(kit, server, project, digits, mutate, status) -> None:
    body = kit.infer_body(digits.x_test[:1])
    mutate(body)
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/v2/models/digits/infer", json=body, headers=kit.bearer(project.tokens["dave"]))
    assert r.status_code == status, r.text
    if status == 400:
        assert "error" in r.json()


def test_nan_inf_and_oversized_bodies_are_rejected(kit, server, project) -> None:
    headers = {**kit.bearer(project.tokens["dave"]), "content-type": "application/json"}
    with httpx.Client(base_url=server.url) as client:
        for bad in ("NaN", "Infinity", "-Infinity"):
            values = ",".join([bad] + ["0.5"] * 63)
            raw = '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[' + values + "]}]}"
            r = client.post("/v2/models/digits/infer", content=raw, headers=headers)
            assert r.status_code == 400 and "NaN" in r.json()["error"]
        huge = (
            b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
            + b"0.5," * 400_000
            + b"0.5]}]}"
        )
        assert client.post("/v2/models/digits/infer", content=huge, headers=headers).status_code == 413

        def chunks():
            yield huge[: len(huge) // 2]
            yield huge[len(huge) // 2 :]

        streamed = client.post("/v2/models/digits/infer", content=chunks(), headers=headers)
        assert streamed.status_code == 413


@pytest.mark.parametrize("action", ["label-only", "block", "throttle"])
def test_monitor_actions_on_an_extraction_client(kit, project, digits, action) -> None:
    cfg = GatewayConfig(
        monitor=dataclasses.replace(MonitorConfig(), action=action),
        rate_limit=dataclasses.replace(
            RateLimitConfig(), per_role={"consumer": "1000/minute"}, throttled="2/minute"
        ),
    )
    gateway = kit.make_gateway(project, digits, cfg, audit=None)
    rng = np.random.default_rng(7)
    headers = kit.bearer(project.tokens["alice"])
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        benign = client.post(
            "/v2/models/digits/infer", json=kit.infer_body(digits.x_test[:10]), headers=headers
        )
        assert len(benign.json()["outputs"]) == 3
        statuses, outputs = [], []
        for _ in range(25):  # random-query extraction, 10 queries per request
            r = client.post(
                "/v2/models/digits/infer", json=kit.infer_body(rng.random((10, 64))), headers=headers
            )
            statuses.append(r.status_code)
            if r.status_code == 200:
                outputs.append([o["name"] for o in r.json()["outputs"]])
        flagged = client.get("/admin/monitor", headers=kit.bearer(project.tokens["carol"])).json()["flagged"]
    assert [c["client"] for c in flagged] and flagged[0]["reason"]
    if action == "label-only":
        assert statuses == [200] * 25 and outputs[-1] == ["label"]
    elif action == "block":
        assert 403 in statuses and statuses[-1] == 403 and outputs[-1] == ["label"]
    else:
        assert statuses[-1] == 429


def test_requests_are_audit_logged_in_batches_without_secrets(kit, project, digits, tmp_path) -> None:
    from bastion.crypto.signing import Ed25519Signer
    from bastion.store.auditlog import AuditLog
    from bastion.store.db import ensure_tables, open_engine

    # Its own trail: the module's shared gateway flushes its batches on a timer, and one landing in this
    # test's window (a loaded machine) would be counted here.
    engine = open_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    ensure_tables(engine)
    audit = AuditLog(engine, Ed25519Signer.generate(), witness_path=tmp_path / "head.json")
    stream = io.StringIO()
    logger = logging.getLogger("bastion.serve.test-audit")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    gateway = kit.make_gateway(project, digits, logger=logger, audit=audit)
    token = project.tokens["alice"]
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        for i in range(30):
            client.post(
                "/v2/models/digits/infer", json=kit.infer_body(digits.x_test[i]), headers=kit.bearer(token)
            )
        client.post(
            "/v2/models/digits/infer", json=kit.infer_body(digits.x_test[0]), headers=kit.bearer("bst_wrong")
        )
        client.get("/v2/models/digits", headers=kit.bearer(project.tokens["bob"]))
    entries = audit.entries(start=0)
    batches = [e for e in entries if e.action == "serve:requests"]
    assert 1 <= len(batches) < 10  # batched, not one entry per request
    records = [r for e in batches for r in e.details["requests"]]
    assert len(records) == 31  # authenticated requests: one record each
    unauth = [e.details["unauthenticated"] for e in batches if "unauthenticated" in e.details]
    assert sum(u["count"] for u in unauth) == 1  # unauthenticated ones: counted by decision, and sampled
    assert [r["decision"] for u in unauth for r in u["sample"]] == ["deny:auth"]
    assert {r["decision"] for r in records} >= {"allow", "deny:role"}
    assert all({"identity", "version", "decision", "status", "latency_ms"} <= set(r) for r in records)
    text = stream.getvalue() + json.dumps([e.to_dict() for e in entries])
    assert token not in text and token[4:16] not in stream.getvalue()
    assert '"inputs"' not in stream.getvalue() and '"data"' not in stream.getvalue()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 32 and all("status" in line for line in lines)
    audit.verify()


def test_tls_with_a_self_signed_certificate(kit, project, digits, tmp_path) -> None:
    cert, key = self_signed_certificate(tmp_path / "tls")
    gateway = kit.make_gateway(project, digits, audit=None)
    with kit.serving(gateway, ssl=(str(cert), str(key))) as srv:
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=srv.url, verify=context) as client:
            r = client.post(
                "/v2/models/digits/infer",
                json=kit.infer_body(digits.x_test[:1]),
                headers=kit.bearer(project.tokens["alice"]),
            )
            assert r.status_code == 200
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=srv.url) as untrusting:
            untrusting.get("/v2/health/live")
        with pytest.raises(httpx.HTTPError), httpx.Client(base_url=srv.url.replace("https", "http")) as plain:
            plain.get("/v2/health/live")


def test_feature_squeezing_guard_rejects_adversarial_inputs(kit, project, digits) -> None:
    from bastion.adversarial.attacks.evasion import pgd
    from bastion.adversarial.defenses.feature_squeezing import calibrate_feature_squeezing

    detector = calibrate_feature_squeezing(
        model=digits.adapter, clean_x=digits.x_train[:400], bit_depth=3, median_size=0, target_fpr=0.05
    )
    x, y = digits.x_test[:60], digits.y_test[:60]
    x_adv = pgd(digits.adapter, x, y, eps=0.2, steps=20, seed=0)
    guard = dataclasses.replace(
        GatewayConfig().input_guard,
        feature_squeezing=True,
        squeeze_bits=3,
        squeeze_threshold=detector.threshold,
    )
    results = {}
    for name, cfg in (("off", GatewayConfig()), ("on", GatewayConfig(input_guard=guard))):
        gateway = kit.make_gateway(project, digits, cfg, audit=None)
        with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
            codes = {}
            for kind, data in (("clean", x), ("adv", x_adv)):
                codes[kind] = [
                    client.post(
                        "/v2/models/digits/infer",
                        json=kit.infer_body(row),
                        headers=kit.bearer(project.tokens["dave"]),
                    ).status_code
                    for row in data
                ]
        results[name] = {k: float(np.mean([c == 400 for c in v])) for k, v in codes.items()}
    assert results["off"] == {"clean": 0.0, "adv": 0.0}
    # With the guard, most adversarial inputs are refused and few clean ones (calibrated at 5 % FPR).
    assert results["on"]["adv"] >= 0.5 and results["on"]["clean"] <= 0.2, results


def test_api_watermark_marks_a_keyed_fraction_of_answers(kit, project, digits, tmp_path) -> None:
    from bastion.watermark import ApiWatermark
    from bastion.watermark.api import ApiMarks
    from bastion.watermark.keys import generate_key

    x = np.random.default_rng(3).random((2000, 64), dtype=np.float32)
    truth = digits.adapter.predict(x)
    marks_file = tmp_path / "marks.json"
    watermark = ApiWatermark(generate_key(), rate=0.005)
    on = GatewayConfig(api_watermark=ApiWatermarkConfig(enabled=True, rate=0.005, marks_file=str(marks_file)))
    mismatched = {}
    for name, cfg, wm in (("off", GatewayConfig(), None), ("on", on, watermark)):
        gateway = kit.make_gateway(project, digits, cfg, audit=None, watermark=wm)
        labels = []
        with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
            for chunk in np.array_split(x, 8):
                resp = client.post(
                    "/v2/models/digits/infer",
                    json=kit.infer_body(chunk),
                    headers=kit.bearer(project.tokens["dave"]),
                )
                labels.append(next(o for o in resp.json()["outputs"] if o["name"] == "label")["data"])
        mismatched[name] = np.concatenate(labels) != truth
    assert not mismatched["off"].any()
    # Exactly the keyed selection is answered with the watermark label, and nothing else.
    assert np.array_equal(mismatched["on"], watermark.is_marked(x))
    assert 0 < mismatched["on"].sum() < 40
    assert len(ApiMarks.load(marks_file).labels) == int(mismatched["on"].sum())
    with pytest.raises(ConfigError):
        kit.make_gateway(project, digits, on, audit=None)  # enabled without a key: refuse


def test_homomorphic_encryption_endpoint(kit, project, digits) -> None:
    import torch

    from bastion.models import TorchAdapter
    from bastion.privacy.he import HEClient, model_from_torch

    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Linear(64, 10))
    adapter = TorchAdapter(linear, input_shape=(64,), n_classes=10)
    he_digits = dataclasses.replace(digits, adapter=adapter)
    x = digits.x_test[:20]
    client_he = HEClient.for_model(model_from_torch(linear), layout="packed")
    context = client_he.public_context()
    body = context + client_he.encrypt(x)
    headers = {"x-bastion-he-context-length": str(len(context)), "content-type": "application/octet-stream"}
    with (
        kit.serving(kit.make_gateway(project, he_digits, audit=None)) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        ok = c.post(
            "/v2/models/digits/he/infer",
            content=body,
            headers={**headers, **kit.bearer(project.tokens["dave"])},
        )
        consumer = c.post(
            "/v2/models/digits/he/infer",
            content=body,
            headers={**headers, **kit.bearer(project.tokens["alice"])},
        )
        garbled = c.post(
            "/v2/models/digits/he/infer",
            content=body[:-100],
            headers={**headers, **kit.bearer(project.tokens["dave"])},
        )
    assert ok.status_code == 200, ok.text
    logits = client_he.decrypt(ok.content)
    assert np.array_equal(logits.argmax(axis=1), adapter.predict(x))
    # Full logits would bypass the consumer's top-k policy: refused. A broken ciphertext: 4xx, not 5xx.
    assert consumer.status_code == 403
    assert 400 <= garbled.status_code < 500
    # The ReLU MLP has no CKKS form: no HE endpoint for it.
    with (
        kit.serving(kit.make_gateway(project, digits, audit=None)) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        r = c.post(
            "/v2/models/digits/he/infer",
            content=body,
            headers={**headers, **kit.bearer(project.tokens["dave"])},
        )
    assert r.status_code == 404
