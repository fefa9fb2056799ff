"""Rate limits: exact sliding logs (requests and rows per identity, requests and auth failures per address),
under concurrent clients, in memory and in Redis (also across two gateway processes)."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.serve.config import GatewayConfig, RateLimitConfig
from bastion.serve.interface import Window
from bastion.serve.ratelimit import MemoryRateLimitStorage, RateLimiter


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
    """Denied past the limit with a truthful Retry-After, allowed again once the window moved on."""
    import time

    limiter = RateLimiter(config=RateLimitConfig(per_role={"consumer": "3/second"}))
    try:
        assert [limiter.hit(identity="c", role="consumer").allowed for _ in range(5)].count(True) == 3
        denied = limiter.hit(identity="c", role="consumer")
        assert not denied.allowed and denied.retry_after_s == 1 and denied.limit == "3/second"
        assert limiter.hit(identity="other", role="consumer").allowed
        time.sleep(1.05)
        assert [limiter.hit(identity="c", role="consumer").allowed for _ in range(4)] == [True] * 3 + [False]
    finally:
        limiter.close()


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=300),
    costs=st.lists(st.integers(min_value=1, max_value=40), min_size=300, max_size=300),
)
def test_sliding_log_is_exact_in_every_rolling_window(gaps: list[float], costs: list[int]) -> None:
    """Against a naive reference: admitted cost in any rolling window never exceeds the amount, and a hit is
    refused only when it would not fit (the two-counter approximation let 195 of 100/minute through)."""
    clock = _Clock()
    storage = MemoryRateLimitStorage(now=clock)
    window = Window(amount=100, seconds=10.0, spec="100/10 seconds")
    admitted: list[tuple[float, int]] = []
    for gap, cost in zip(gaps, costs, strict=False):
        clock.t += gap
        used = sum(c for t, c in admitted if t > clock.t - window.seconds)
        got = storage.acquire("k", cost=cost, window=window)
        assert got.allowed == (used + cost <= window.amount)
        if got.allowed:
            admitted.append((clock.t, cost))
        else:  # the retry hint is when enough of the oldest admitted hits have left the window
            clock_later = clock.t + got.retry_after_s + 1e-9  # float rounding of ts + W - now
            still = sum(c for t, c in admitted if t > clock_later - window.seconds)
            assert still + cost <= window.amount
    for t0, _ in admitted:
        assert sum(c for t, c in admitted if t0 <= t < t0 + window.seconds) <= window.amount


def test_the_boundary_burst_of_the_approximation_is_refused() -> None:
    """The attack on the sliding-window counter: a full burst at the end of one window and another just after
    the next began. With the exact log the second burst is refused until the first leaves the window."""
    clock = _Clock()
    storage = MemoryRateLimitStorage(now=clock)
    window = Window(amount=100, seconds=60.0, spec="100/minute")
    clock.t = 59.0
    assert sum(storage.acquire("c", cost=1, window=window).allowed for _ in range(100)) == 100
    clock.t = 61.0  # 2 s into the next fixed window: the counter approximation weighs the burst at 97 %
    assert sum(storage.acquire("c", cost=1, window=window).allowed for _ in range(100)) == 0
    clock.t = 119.5  # the burst left the rolling window
    assert sum(storage.acquire("c", cost=1, window=window).allowed for _ in range(100)) == 100


def test_memory_keys_are_bounded() -> None:
    storage = MemoryRateLimitStorage(max_keys=1000)
    window = Window(amount=5, seconds=60.0, spec="5/minute")
    for i in range(5000):
        storage.acquire(f"addr:{i}", cost=1, window=window)
    assert len(storage) == 1000


def test_rows_are_limited_as_well_as_requests(kit, project, digits) -> None:
    """100 requests a minute of 256 rows each were 25,600 model queries a minute: rows are limited too."""
    cfg = GatewayConfig(
        rate_limit=dataclasses.replace(
            RateLimitConfig(), per_role={"consumer": "100/minute"}, rows_per_role={"consumer": "600/minute"}
        )
    )
    gateway = kit.make_gateway(project, digits, cfg, audit=None)
    x = np.repeat(digits.x_test[:1], 256, axis=0)
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url) as client:
        codes = [
            client.post(
                "/v2/models/digits/infer", json=kit.infer_body(x), headers=kit.bearer(project.tokens["alice"])
            )
            for _ in range(5)
        ]
    assert [r.status_code for r in codes] == [200, 200, 429, 429, 429]  # 512 rows fit, 768 do not
    assert "row limit 600/minute" in codes[2].json()["error"] and int(codes[2].headers["retry-after"]) >= 1


@pytest.mark.redis
def test_redis_sliding_log_is_exact_and_weighted(redis_url: str) -> None:
    cfg = RateLimitConfig(
        per_role={"consumer": "20/minute"},
        rows_per_role={"consumer": "100/minute"},
        key_prefix=f"bastion-rl-test-{uuid.uuid4().hex}",
    )
    limiter = RateLimiter(config=cfg, redis_url=redis_url)
    try:
        with ThreadPoolExecutor(8) as pool:
            hits = list(pool.map(lambda _: limiter.hit(identity="c", role="consumer").allowed, range(40)))
        assert hits.count(True) == 20
        rows = [limiter.rows(identity="c", role="consumer", rows=30).allowed for _ in range(4)]
        assert rows == [True, True, True, False]
        assert limiter.rows(identity="c", role="consumer", rows=10).allowed  # exactly the rest fits
        denied = limiter.rows(identity="c", role="consumer", rows=1)
        assert not denied.allowed and 1 <= denied.retry_after_s <= 60 and denied.kind == "rows"
    finally:
        limiter.reset()
        limiter.close()
