"""The review's attacks on the gateway (issue 12, items 14–18, 21, 23), each against a real uvicorn server on
127.0.0.1: unauthenticated amplification, metrics cardinality, 500s with tracebacks, per-element type checks,
duplicate Authorization headers, a slow model stalling the event loop, JWTs without audience or issuer."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.serve import Authenticator, Gateway, ServedModel
from bastion.serve.auth import JwtVerifier
from bastion.serve.config import GatewayConfig, JwtConfig, RateLimitConfig, config_from_mapping
from bastion.serve.observability import JsonFormatter
from bastion.serve.server import token_verifier

INFER = "/v2/models/digits/infer"


class _Capture:
    """Every log line of the gateway and of uvicorn (where tracebacks of unhandled exceptions go)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.asgi", "starlette")]

    def __enter__(self) -> _Capture:
        for logger in self.loggers:
            logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self.handler)

    def text(self) -> str:
        return self.stream.getvalue()


def _latin1_or_utf8(value: str) -> bytes:
    try:
        return value.encode("latin-1")  # "\xb2" goes on the wire as the single byte 0xb2
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _logger(stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger(f"bastion.serve.test-attacks-{secrets.token_hex(3)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def test_unauthenticated_flood_neither_grows_the_log_nor_reaches_the_database(project, digits, kit) -> None:
    """1,500 random ``bst_`` tokens used to cost 1,500 token lookups and 1,553 signed log entries."""
    lookups: list[int] = []
    verify = token_verifier(project.vault)

    def counted(token: str) -> Any:
        lookups.append(1)
        return verify(token)

    model = ServedModel(name="digits", version="1", adapter=digits.adapter, digest="sha256:t", env="dev")
    cfg = GatewayConfig(rate_limit=dataclasses.replace(RateLimitConfig(), auth_failures="20/minute"))
    gateway = Gateway(
        model=model, config=cfg, authenticator=Authenticator(verify_token=counted), audit=project.vault.audit
    )
    before = project.vault.audit.size()
    body = kit.infer_body(digits.x_test[0])
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        codes = [
            client.post(INFER, json=body, headers=kit.bearer("bst_" + secrets.token_urlsafe(32))).status_code
            for _ in range(300)
        ]
        ok = client.post(INFER, json=body, headers=kit.bearer(project.tokens["alice"]))
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}  # refused before any lookup
    assert len(lookups) == 20 and ok.status_code == 429  # this address is done for the window
    entries = project.vault.audit.entries(start=before)
    assert len(entries) <= 3, [e.action for e in entries]  # batches, not one entry per failure
    unauth = [e.details["unauthenticated"] for e in entries if "unauthenticated" in e.details]
    assert sum(u["count"] for u in unauth) == 301  # every refused request counted
    assert sum(len(u["sample"]) for u in unauth) <= 20 * len(unauth)  # and sampled, not stored whole


def test_random_tokens_do_not_evict_verified_ones(project) -> None:
    auth = Authenticator(verify_token=token_verifier(project.vault))
    valid = project.tokens["alice"]
    assert auth.verify(valid).name == "alice"
    for _ in range(12_000):  # more than the verified cache holds
        token = "bst_" + secrets.token_urlsafe(8)
        with pytest.raises(Exception, match="invalid"):
            auth.authenticate("Bearer " + token) if auth.cached(token) is None else None
            raise AssertionError("unreachable")
    assert auth.cached(valid) is not None
    verified, failed = auth.cache_sizes()
    assert verified == 1 and failed <= 2_000


def test_metrics_are_labelled_by_route_template(project, digits, kit) -> None:
    """2,500 requests to random paths created 40,000 series; unknown paths now share one label."""
    gateway = kit.make_gateway(project, digits, audit=None)
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        for i in range(200):
            client.get(f"/x/{secrets.token_hex(6)}/{i}")
            client.get(f"/v2/models/m{i}/infer", headers=kit.bearer(project.tokens["alice"]))
        text = client.get("/metrics", headers=kit.bearer(project.tokens["dave"])).text
    routes = {
        line.split('route="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("bastion_gateway_requests_total{")
    }
    assert routes <= {"unmatched", "infer", "metrics"}, routes
    assert len(text) < 20_000


@pytest.fixture(scope="module")
def jwt_server(kit, project, digits, tmp_path_factory: pytest.TempPathFactory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = tmp_path_factory.mktemp("jwt-attacks") / "idp.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwt_cfg = JwtConfig(
        public_key_file=str(pub), issuer="https://idp.test", audience="gw", algorithms=("RS256",)
    )
    stream = io.StringIO()
    gateway = kit.make_gateway(
        project, digits, GatewayConfig(jwt=jwt_cfg), jwt=JwtVerifier(jwt_cfg), logger=_logger(stream)
    )
    with kit.serving(gateway) as srv:
        yield srv, gateway, stream


@pytest.mark.parametrize(
    ("name", "mutate", "headers"),
    [
        ("huge dimension", lambda b: b["inputs"][0].update(shape=[9223372036854775808, 0], data=[]), {}),
        ("huge dimension 2", lambda b: b["inputs"][0].update(shape=[1, 10**30], data=[]), {}),
        ("superscript two", lambda b: None, {"Inference-Header-Content-Length": "\xb2"}),
        ("arabic digit", lambda b: None, {"Inference-Header-Content-Length": "\u0661"}),
        ("string element", lambda b: b["inputs"][0]["data"].__setitem__(1, "0.5"), {}),
        ("string element late", lambda b: b["inputs"][0]["data"].__setitem__(63, "0.5"), {}),
        ("bool element", lambda b: b["inputs"][0]["data"].__setitem__(5, True), {}),
        ("null element", lambda b: b["inputs"][0]["data"].__setitem__(5, None), {}),
        ("nested string", lambda b: b["inputs"][0].update(data=[[0.5] * 63 + ["0.5"]]), {}),
        ("ragged nesting", lambda b: b["inputs"][0].update(data=[[0.5] * 32, 0.5, [[0.5]]]), {}),
    ],
)
def test_hostile_inputs_are_4xx_without_traceback(jwt_server, kit, project, digits, name, mutate, headers):
    srv, _, stream = jwt_server
    body = kit.infer_body(digits.x_test[0])
    mutate(body)
    with _Capture() as logs, httpx.Client(base_url=srv.url) as client:
        raw = json.dumps(body).encode()
        sent = {**kit.bearer(project.tokens["dave"]), **headers}
        r = client.post(
            INFER, content=raw, headers=[(k.encode(), _latin1_or_utf8(v)) for k, v in sent.items()]
        )
    assert 400 <= r.status_code < 500 and "error" in r.json(), (name, r.status_code, r.text)
    assert "Traceback" not in logs.text() + stream.getvalue()


@pytest.fixture(scope="module")
def ec_jwt_server(kit, project, digits, tmp_path_factory: pytest.TempPathFactory):
    """The default algorithms (ES256 and RS256) with an EC key: an RS256 header met an EC key (TypeError)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path_factory.mktemp("jwt-ec") / "idp.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwt_cfg = JwtConfig(public_key_file=str(pub), issuer="https://idp.test", audience="gw")
    stream = io.StringIO()
    gateway = kit.make_gateway(
        project, digits, GatewayConfig(jwt=jwt_cfg), jwt=JwtVerifier(jwt_cfg), logger=_logger(stream)
    )
    with kit.serving(gateway) as srv:
        yield srv, gateway, stream


@pytest.mark.parametrize("which", ["ec_jwt_server", "jwt_server"])
def test_malformed_jwt_is_a_401_not_a_500(request, which: str) -> None:
    srv, _, stream = request.getfixturevalue(which)
    hostile = [
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.AAAA",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "eyJ.eyJ.eyJ",
        "eyJhbGciOiJSUzI1NiJ9.W10.AAAA",  # payload is a JSON list
    ]
    with _Capture() as logs, httpx.Client(base_url=srv.url) as client:
        for token in hostile:
            r = client.get("/v2/models/digits", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, (token, r.text)
    assert "Traceback" not in logs.text() + stream.getvalue()


def test_an_unexpected_exception_is_a_json_500_logged_counted_and_audited(kit, project, digits) -> None:
    class Broken:
        input_shape, n_classes = (64,), 10

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("secret detail that must not leak")

    stream = io.StringIO()
    broken = dataclasses.replace(digits, adapter=Broken())
    gateway = kit.make_gateway(project, broken, logger=_logger(stream))
    before = project.vault.audit.size()
    with _Capture() as logs, kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.post(
            INFER, json=kit.infer_body(digits.x_test[0]), headers=kit.bearer(project.tokens["dave"])
        )
        metrics = client.get("/metrics", headers=kit.bearer(project.tokens["dave"])).text
    assert r.status_code == 500 and r.json() == {"error": "internal error"}
    text = logs.text() + stream.getvalue()
    assert "Traceback" not in text and "secret detail" not in text and "RuntimeError" in stream.getvalue()
    assert 'bastion_gateway_errors_total{route="infer"} 1.0' in metrics
    records = [
        rec
        for e in project.vault.audit.entries(start=before)
        if e.action == "serve:requests"
        for rec in e.details["requests"]
    ]
    mine = [
        (rec["status"], rec["decision"]) for rec in records if rec["path"] == "infer" and rec["status"] >= 500
    ]
    assert mine == [(500, "error:internal")]  # other gateways of this session may flush into the same log


_header_names = st.sampled_from(
    ["authorization", "content-type", "inference-header-content-length", "x-bastion-he-context-length", "x-a"]
)
# field values never start or end with whitespace (RFC 9110 5.5): h11 refuses to send such a value at all
_header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=40
).map(lambda v: v.strip(" \t"))
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=4),
    body=st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "inputs": st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.just("input"),
                            "datatype": st.sampled_from(["FP32", "INT64", "BOOL", "BYTES", "UINT8"]),
                            "shape": st.lists(st.integers(min_value=-2, max_value=2**70), max_size=3),
                            "data": st.lists(_json_leaf | st.lists(_json_leaf, max_size=3), max_size=70),
                        }
                    ),
                    min_size=1,
                    max_size=2,
                )
            }
        ),
    ),
    authed=st.booleans(),
)
def test_fuzzed_headers_and_bodies_never_get_a_500(jwt_server, project, headers, body, authed) -> None:
    srv, _, stream = jwt_server
    sent: list[tuple[str, str]] = [(k, v) for k, v in headers if not (authed and k == "authorization")]
    if authed:
        sent.append(("authorization", f"Bearer {project.tokens['dave']}"))
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in sent]
    with _Capture() as logs, httpx.Client(base_url=srv.url) as client:
        r = client.post(INFER, content=json.dumps(body).encode(), headers=raw_headers)
    assert r.status_code < 500, (r.status_code, r.text)
    assert "Traceback" not in logs.text() + stream.getvalue()


def test_duplicate_authorization_headers_are_refused(kit, project, digits) -> None:
    """The last of two Authorization headers used to win: one for the logs, another for the access."""
    gateway = kit.make_gateway(project, digits, audit=None)
    body = kit.infer_body(digits.x_test[0])
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        for pair in (
            ("bst_wrong", project.tokens["alice"]),
            (project.tokens["alice"], project.tokens["dave"]),
        ):
            headers = [(b"authorization", f"Bearer {t}".encode()) for t in pair]
            r = client.post(INFER, json=body, headers=headers)
            assert r.status_code == 400 and "more than one authorization" in r.json()["error"]
        assert client.post(INFER, json=body, headers=kit.bearer(project.tokens["alice"])).status_code == 200


def test_a_slow_model_does_not_delay_health_checks(kit, project, digits) -> None:
    """Inference used to run on the event loop: one slow call stalled every connection."""

    class Slow:
        input_shape, n_classes = (64,), 10

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            time.sleep(3.0)
            return np.asarray(digits.adapter.predict_proba(x))

    gateway = kit.make_gateway(project, dataclasses.replace(digits, adapter=Slow()), audit=None)
    with kit.serving(gateway) as srv:
        slow: list[int] = []
        worker = threading.Thread(
            target=lambda: slow.append(
                httpx.post(
                    srv.url + INFER,
                    json=kit.infer_body(digits.x_test[0]),
                    headers=kit.bearer(project.tokens["dave"]),
                    timeout=30,
                ).status_code
            )
        )
        worker.start()
        time.sleep(0.5)  # the slow inference is running
        latencies = []
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            for _ in range(5):
                t0 = time.perf_counter()
                assert client.get("/v2/health/live").status_code == 200
                latencies.append(time.perf_counter() - t0)
        still_running = worker.is_alive()
        worker.join(30)
    assert still_running and slow == [200]
    assert max(latencies) < 1.0, latencies  # not the 2.5 s the slow call has left


def test_jwt_needs_issuer_and_audience(tmp_path: Path) -> None:
    """Without ``aud``/``iss`` any token the IdP issued for another service was accepted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = tmp_path / "idp.pem"
    pem.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for table in ({"public_key_file": str(pem)}, {"public_key_file": str(pem), "issuer": "i"}):
        with pytest.raises(ConfigError, match="issuer and audience"):
            config_from_mapping({"jwt": table})
        with pytest.raises(ConfigError, match="issuer and audience"):
            JwtVerifier(JwtConfig(**table))
    assert config_from_mapping({"jwt": {"public_key_file": str(pem), "issuer": "i", "audience": "a"}})
