"""Schemathesis against the gateway's own OpenAPI document, over a real server: no 5xx, no crash."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.serve.config import GatewayConfig, RateLimitConfig


@pytest.mark.slow
def test_no_server_errors_on_generated_requests(kit, project, digits) -> None:
    import schemathesis
    from schemathesis.checks import not_a_server_error

    cfg = GatewayConfig(
        rate_limit=dataclasses.replace(RateLimitConfig(), per_role={"admin": "100000/minute"})
    )
    gateway = kit.make_gateway(project, digits, cfg, audit=None)
    with kit.serving(gateway) as srv:
        document = httpx.get(srv.url + "/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v2/models/{name}/infer", "/v2/models/{name}", "/metrics"}
        headers = {"Authorization": f"Bearer {project.tokens['dave']}"}
        seen: set[int] = set()
        for operation in operations:

            @given(
                case=operation.as_strategy(), auth=st.sampled_from(["admin", "none"]), served=st.booleans()
            )
            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                derandomize=True,  # the same examples every run: the coverage assertion below cannot flake
                suppress_health_check=list(HealthCheck),
            )
            def check(case, auth: str, served: bool) -> None:
                if served and case.path_parameters and "name" in case.path_parameters:
                    case.path_parameters["name"] = "digits"  # reach the handlers, not only the 404
                response = case.call(base_url=srv.url, headers=headers if auth == "admin" else {})
                seen.add(response.status_code)
                case.validate_response(response, checks=[not_a_server_error])

            check()
        assert all(code < 500 for code in seen)
        assert {200, 400, 401} <= seen
