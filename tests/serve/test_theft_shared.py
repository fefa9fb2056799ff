"""Theft-detector state shared through Redis (issue 20, gap 2): an attacker who alternates between two
gateway workers is judged on its combined stream and flagged as quickly as on one worker."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from bastion.errors import BudgetExhausted, ServiceError
from bastion.serve.theft import Flag, TheftDefence, TheftPolicy, _Consumer
from bastion.serve.theft_state import RedisTheftStore, dump_state, load_state

from .test_theft import make_defence


def _first_flag(workers: list[TheftDefence], digits: Any, consumer: str) -> int | None:
    """Random (synthetic) queries in requests of 20 rows, sent to the workers in turn."""
    rng = np.random.default_rng(21)
    for i in range(15):
        x = rng.random((20, 64), dtype=np.float32)
        ans = workers[i % len(workers)].respond(
            consumers=(consumer, "addr:198.51.100.4"), x=x, proba=digits.adapter.predict_proba(x)
        )
        if ans.flagged:
            return 20 * (i + 1)
    return None


def test_state_round_trips_without_pickle_and_damage_fails_closed() -> None:
    s = _Consumer(50, 8, 4)
    s.pct.extend([0.1, 0.9])
    s.near.extend([True, False])
    s.hist[:2] = 1.5
    s.hist_n, s.rows, s.rows_day, s.day, s.bits = 2, 7, 7, 3, 12.5
    s.seen[b"\x00" * 15 + b"\x01"] = None  # a digest ending in NUL bytes survives (no 'S' dtype)
    s.flag = Flag("eve", "shift", 1.5, 1.0, 2.0, {"shift_z": 9.1})
    back = load_state(dump_state(s), _Consumer(50, 8, 4), Flag)
    assert list(back.pct) == [0.1, 0.9] and list(back.near) == [True, False]
    assert np.array_equal(back.hist, s.hist) and (back.hist_n, back.rows, back.day) == (2, 7, 3)
    assert list(back.seen) == list(s.seen) and back.flag == s.flag and back.bits == 12.5
    with pytest.raises(ServiceError):
        load_state(b"not a state", _Consumer(50, 8, 4), Flag)
    with pytest.raises(ServiceError):  # a state of another shape (another model) is refused
        load_state(dump_state(s), _Consumer(50, 16, 4), Flag)


@pytest.mark.redis
def test_two_workers_on_one_redis_flag_an_alternating_attacker_as_fast_as_one(
    redis_url: str, digits: Any
) -> None:
    prefix = f"bastion-theft-test-{os.urandom(6).hex()}"
    workers = [make_defence(digits, store=RedisTheftStore(url=redis_url, prefix=prefix)) for _ in range(2)]
    one = _first_flag([make_defence(digits)], digits, "mallory")
    shared = _first_flag(workers, digits, "mallory")
    apart = _first_flag([make_defence(digits), make_defence(digits)], digits, "mallory")
    assert one is not None and shared == one  # the combined stream, judged as one process judges it
    assert apart is None or apart > one  # per-process state: each worker sees half the stream
    # the flag and its evidence are visible from the worker that did not raise it
    listed = {f["consumer"] for f in workers[1].flags()} | {f["consumer"] for f in workers[0].flags()}
    assert "mallory" in listed
    # the daily row budget is one budget across workers
    capped = TheftPolicy(daily_rows=100)
    pair = [
        make_defence(digits, policy=capped, store=RedisTheftStore(url=redis_url, prefix=prefix + "-b"))
        for _ in range(2)
    ]
    x = digits.x_test[:40]
    p = digits.adapter.predict_proba(x)
    pair[0].respond(consumers=("bob",), x=x, proba=p)
    pair[1].respond(consumers=("bob",), x=x, proba=p)
    with pytest.raises(BudgetExhausted):
        pair[0].respond(consumers=("bob",), x=x, proba=p)
    workers[0].reset("mallory")
    assert "mallory" not in {f["consumer"] for f in workers[1].flags()}


def test_an_unreachable_store_fails_closed() -> None:
    with pytest.raises(ServiceError):
        RedisTheftStore(url="redis://127.0.0.1:1/0")


@pytest.mark.slow
@pytest.mark.redis
def test_two_live_gateways_on_one_redis_see_one_consumer_stream(
    redis_url: str, project: Any, digits: Any, kit: Any
) -> None:
    """Two real gateways (uvicorn on 127.0.0.1) on one Redis: a consumer alternating between them is
    flagged at the same row count as on one gateway, and either gateway's admin API lists the flag."""
    import httpx

    alice, dave = kit.bearer(project.tokens["alice"]), kit.bearer(project.tokens["dave"])

    def first_flag(defences: list[TheftDefence]) -> int | None:
        rng = np.random.default_rng(21)
        gateways = [kit.make_gateway(project, digits, theft=d) for d in defences]
        with kit.serving(gateways[0]) as a, kit.serving(gateways[-1]) as b:
            servers = [a, b] if len(defences) > 1 else [a]
            for i in range(15):
                x = rng.random((20, 64), dtype=np.float32)
                url = servers[i % len(servers)].url
                r = httpx.post(
                    f"{url}/v2/models/digits/infer", json=kit.infer_body(x), headers=alice, timeout=30
                )
                assert r.status_code == 200
                listed = httpx.get(f"{servers[-1].url}/admin/theft", headers=dave, timeout=30).json()
                if listed["flags"]:  # alice's identity (or her address) is flagged
                    return 20 * (i + 1)
        return None

    prefix = f"bastion-theft-test-{os.urandom(6).hex()}"
    one = first_flag([make_defence(digits)])
    shared = first_flag(
        [make_defence(digits, store=RedisTheftStore(url=redis_url, prefix=prefix)) for _ in range(2)]
    )
    assert one is not None and shared == one
    apart = first_flag([make_defence(digits), make_defence(digits)])  # per-process state, for contrast
    assert apart is None or apart > one
