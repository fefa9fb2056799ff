"""The gateway's Open Inference Protocol (v2) responses validate against KServe's OIP REST spec.

The spec (``tests/schemas/oip/open_inference_rest.yaml``, Apache-2.0) is an OpenAPI 3.0 document whose
``components/schemas`` are plain JSON Schema; each response body is validated against the component the spec
names for that endpoint and status, on a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml

SPEC = yaml.safe_load(
    (Path(__file__).parents[1] / "schemas" / "oip" / "open_inference_rest.yaml").read_text(encoding="utf-8")
)


def _validator(component: str) -> Any:
    schema = {"$ref": f"#/components/schemas/{component}", "components": SPEC["components"]}
    return jsonschema_rs.Draft4Validator(schema)


def _errors(component: str, body: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in _validator(component).iter_errors(body)]


@pytest.fixture(scope="module")
def url(kit, project, digits):  # type: ignore[no-untyped-def]
    with kit.serving(kit.make_gateway(project, digits)) as server:
        yield server.url


def test_metadata_and_inference_responses_follow_the_spec(url, kit, project, digits) -> None:  # type: ignore[no-untyped-def]
    headers = kit.bearer(project.tokens["dave"])
    with httpx.Client(base_url=url, timeout=30) as client:
        server = client.get("/v2")
        assert server.status_code == 200 and _errors("metadata_server_response", server.json()) == []
        model = client.get("/v2/models/digits", headers=headers)
        assert model.status_code == 200 and _errors("metadata_model_response", model.json()) == []
        body = kit.infer_body(digits.x_test[:4])
        assert _errors("inference_request", body) == []  # the tests' own requests are spec requests
        for outputs in (None, ["label"], ["label", "top_k_probabilities"]):
            body = {**kit.infer_body(digits.x_test[:4], outputs=outputs), "id": "req-42"}
            assert client.post("/v2/models/digits/infer", json=body).status_code == 401  # no credentials
            r = client.post("/v2/models/digits/infer", json=body, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["id"] == "req-42"
            assert _errors("inference_response", r.json()) == [], r.json()


def test_response_without_a_request_id_follows_the_spec(url, kit, project, digits) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post(
            "/v2/models/digits/infer",
            json=kit.infer_body(digits.x_test[:2]),
            headers=kit.bearer(project.tokens["dave"]),
        )
    assert r.status_code == 200
    assert _errors("inference_response", r.json()) == [], r.json()


def test_error_responses_follow_the_spec(url, kit, project) -> None:  # type: ignore[no-untyped-def]
    headers = kit.bearer(project.tokens["dave"])
    bad_requests = [
        {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]}]},
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ["x"] * 64}]},
        {"nothing": True},
    ]
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in bad_requests:
            r = client.post("/v2/models/digits/infer", json=body, headers=headers)
            assert 400 <= r.status_code < 500, (body, r.status_code)
            assert _errors("inference_error_response", r.json()) == [] and r.json()["error"], r.json()
        missing = client.get("/v2/models/no-such-model", headers=headers)
        assert missing.status_code == 404
        assert _errors("metadata_model_error_response", missing.json()) == []


def test_the_spec_schemas_have_teeth() -> None:
    assert _errors("inference_response", {"model_name": "m", "outputs": [{"name": "x"}]})  # no shape/data
    assert _errors("metadata_model_response", {"name": "m"})  # no platform
    assert _errors("metadata_server_response", {"name": "bastion", "version": "1"})  # no extensions
