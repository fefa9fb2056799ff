"""The rate-limit storage contract (:class:`bastion.serve.interface.RateLimitStorage`), run for every
implementation: memory (one process) and Redis (``BASTION_TEST_REDIS_URL``, across workers and replicas).

Redis keeps time itself (server clock), so the windows here are real and short."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bastion.errors import ServiceError
from bastion.serve.interface import RateLimitStorage, Window
from bastion.serve.ratelimit import MemoryRateLimitStorage, RedisRateLimitStorage

SECOND = Window(amount=10, seconds=1.0, spec="10/second")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request: pytest.FixtureRequest) -> Iterator[RateLimitStorage]:
    if request.param == "memory":
        store: RateLimitStorage = MemoryRateLimitStorage()
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisRateLimitStorage(url, key_prefix=f"bastion-conformance-{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        store.reset()
        store.close()


def test_costs_are_admitted_while_they_fit_and_weighted(storage: RateLimitStorage) -> None:
    got = [storage.acquire("k", cost=c, window=SECOND) for c in (4, 4, 3, 2)]
    assert [a.allowed for a in got] == [True, True, False, True]  # 4+4 fit, 3 does not, 2 fills it
    assert [a.remaining for a in got[:2]] == [6, 2] and got[3].remaining == 0
    refused = got[2]
    assert refused.remaining == 2 and 0 < refused.retry_after_s <= SECOND.seconds


def test_a_zero_cost_check_records_nothing(storage: RateLimitStorage) -> None:
    for _ in range(5):
        assert storage.acquire("z", cost=0, window=SECOND).allowed
    assert storage.acquire("z", cost=10, window=SECOND).allowed  # the checks used none of the window
    assert not storage.acquire("z", cost=0, window=SECOND).allowed  # full: one more unit would not fit


def test_keys_are_independent_and_reset_clears_them(storage: RateLimitStorage) -> None:
    assert storage.acquire("a", cost=10, window=SECOND).allowed
    assert not storage.acquire("a", cost=1, window=SECOND).allowed
    assert storage.acquire("b", cost=10, window=SECOND).allowed
    storage.reset()
    assert storage.acquire("a", cost=10, window=SECOND).allowed


def test_the_window_slides(storage: RateLimitStorage) -> None:
    window = Window(amount=3, seconds=0.4, spec="3 per 0.4 second")
    assert all(storage.acquire("s", cost=1, window=window).allowed for _ in range(3))
    refused = storage.acquire("s", cost=1, window=window)
    assert not refused.allowed and refused.retry_after_s <= window.seconds
    time.sleep(window.seconds + 0.15)
    assert storage.acquire("s", cost=3, window=window).allowed


def test_concurrent_acquires_admit_exactly_the_amount(storage: RateLimitStorage) -> None:
    window = Window(amount=25, seconds=30.0, spec="25 per 30 seconds")
    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(lambda _: storage.acquire("c", cost=1, window=window).allowed, range(80)))
    assert admitted.count(True) == 25


@pytest.mark.redis
def test_an_unreachable_redis_fails_closed_at_construction() -> None:
    with pytest.raises(ServiceError, match="Redis"):
        RedisRateLimitStorage("redis://127.0.0.1:9/0", key_prefix="unreachable")
