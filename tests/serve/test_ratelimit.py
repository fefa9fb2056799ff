"""Per-identity rate limits under concurrent clients: in memory, and in Redis across two gateway processes."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bastion.serve.config import GatewayConfig, RateLimitConfig
from bastion.serve.ratelimit import EXPIRY_INTERVAL_S, RateLimiter


def _hammer(
    urls: list[str], token: str, body: dict, *, clients: int, per_client: int
) -> list[httpx.Response]:
    def run(i: int) -> list[httpx.Response]:
        out = []
        with httpx.Client(base_url=urls[i % len(urls)], timeout=30) as client:
            for _ in range(per_client):
                out.append(
                    client.post(
                        "/v2/models/digits/infer", json=body, headers={"Authorization": f"Bearer {token}"}
                    )
                )
        return out

    with ThreadPoolExecutor(clients) as pool:
        return [r for rs in pool.map(run, range(clients)) for r in rs]


def _check(responses: list[httpx.Response], limit: int) -> None:
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(ok) == limit and len(ok) + len(limited) == len(responses)
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in limited)


def test_default_consumer_limit_is_100_per_minute() -> None:
    limiter = RateLimiter(config=RateLimitConfig())
    results = [limiter.hit(identity="c1", role="consumer").allowed for _ in range(130)]
    assert results.count(True) == 100
    denied = limiter.hit(identity="c1", role="consumer")
    assert not denied.allowed and denied.retry_after_s >= 1
    assert limiter.hit(identity="c2", role="consumer").allowed  # per identity


def test_memory_limits_hold_under_concurrent_clients(kit, project, digits) -> None:
    cfg = GatewayConfig(rate_limit=dataclasses.replace(RateLimitConfig(), per_role={"consumer": "30/minute"}))
    gateway = kit.make_gateway(project, digits, cfg, audit=None)
    with kit.serving(gateway) as srv:
        responses = _hammer(
            [srv.url], project.tokens["alice"], kit.infer_body(digits.x_test[0]), clients=6, per_client=10
        )
        # Another identity has its own window.
        with httpx.Client(base_url=srv.url) as client:
            other = client.post(
                "/v2/models/digits/infer",
                json=kit.infer_body(digits.x_test[0]),
                headers=kit.bearer(project.tokens["dave"]),
            )
    _check(responses, 30)
    assert other.status_code == 200


@pytest.mark.slow
@pytest.mark.redis
def test_redis_limits_hold_across_two_gateway_processes(
    redis_url: str, project, digits, registry_model: str, serve_process, kit, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[serve.rate_limit]\nkey_prefix = "bastion-rl-{unique}"\n'
        '[serve.rate_limit.per_role]\nconsumer = "30/minute"\n'
        f'[serve.monitor]\nkey_prefix = "bastion-mon-{unique}"\n',
        encoding="utf-8",
    )
    procs = [
        serve_process(project.home, registry_model, "--redis", redis_url, "--config", str(config))
        for _ in range(2)
    ]
    for proc in procs:
        proc.wait_ready()
    responses = _hammer(
        [p.url for p in procs],
        project.tokens["alice"],
        kit.infer_body(digits.x_test[0]),
        clients=6,
        per_client=10,
    )
    _check(responses, 30)
    assert {r.status_code for r in responses[:10]} <= {200, 429}


def test_memory_window_slides_and_reports_retry_after() -> None:
    """limits' sliding-window counter in memory: denied past the limit, allowed again once it moved on."""
    import time

    limiter = RateLimiter(config=RateLimitConfig(per_role={"consumer": "3/second"}))
    try:
        assert [limiter.hit(identity="c", role="consumer").allowed for _ in range(5)].count(True) == 3
        denied = limiter.hit(identity="c", role="consumer")
        assert not denied.allowed and denied.retry_after_s == 1 and denied.limit == "3/second"
        assert limiter.hit(identity="other", role="consumer").allowed
        # The storage's expiry sweep runs once a second, not every 10 ms (see bastion.serve.ratelimit).
        assert limiter._storage.timer.interval == EXPIRY_INTERVAL_S
        time.sleep(2.05)  # two whole windows later nothing of the burst is weighted in any more
        assert [limiter.hit(identity="c", role="consumer").allowed for _ in range(4)] == [True] * 3 + [False]
    finally:
        limiter.close()
