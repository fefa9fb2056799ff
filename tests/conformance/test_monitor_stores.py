"""The extraction monitor's storage contract (:class:`bastion.serve.interface.MonitorStore`), run for every
store: memory (one process) and Redis (``BASTION_TEST_REDIS_URL``, shared by replicas).

A store keeps, per client, the newest ``history`` rows, the newest ``distance_window`` distances and
``coverage_window`` codes (oldest first), the count of every row ever recorded and the first flag raised
(sticky until ``reset``); an unknown client reads as empty and is not created by reading."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from bastion.serve.config import MonitorConfig
from bastion.serve.interface import MonitorStore
from bastion.serve.monitor import MemoryMonitorStore, RedisMonitorStore

WIDTH = 4
CFG = MonitorConfig(history=6, distance_window=5, coverage_window=4)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[MonitorStore]:
    if request.param == "memory":
        yield MemoryMonitorStore(config=CFG, n_features=WIDTH)
        return
    url = request.getfixturevalue("redis_url")
    redis_store = RedisMonitorStore(config=CFG, n_features=WIDTH, url=url, prefix=f"mon-{uuid.uuid4().hex}")
    try:
        yield redis_store
    finally:
        for name, _, _ in redis_store.clients():
            redis_store.reset(name)


def _rows(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start * WIDTH, (start + n) * WIDTH, dtype=np.float32).reshape(n, WIDTH)


def _record(store: MonitorStore, client: str, n: int, start: int, flag: str | None = None) -> None:
    store.record(
        client,
        rows=_rows(n, start),
        distances=np.arange(start, start + n, dtype=np.float64),
        codes=np.arange(start, start + n, dtype=np.int64),
        flag=flag,
    )


def test_an_unknown_client_reads_empty_and_is_not_created(store: MonitorStore) -> None:
    snap = store.snapshot("nobody")
    assert snap.count == 0 and snap.flag is None and snap.history.shape == (0, WIDTH)
    assert len(snap.distances) == 0 and len(snap.codes) == 0
    assert store.flag("nobody") is None
    assert store.clients() == []


def test_records_are_kept_capped_and_in_order(store: MonitorStore) -> None:
    _record(store, "c", 3, 0)
    _record(store, "c", 5, 3)  # 8 rows in all: more than every cap
    snap = store.snapshot("c")
    assert snap.count == 8
    kept = {tuple(r) for r in snap.history}
    assert len(snap.history) == CFG.history and kept == {tuple(r) for r in _rows(6, 2)}  # the newest six
    np.testing.assert_array_equal(snap.distances, np.arange(3, 8, dtype=np.float64))  # oldest first
    np.testing.assert_array_equal(snap.codes, np.arange(4, 8, dtype=np.int64))
    assert snap.history.dtype == np.float32 and snap.codes.dtype == np.int64


def test_the_first_flag_sticks_until_reset(store: MonitorStore) -> None:
    _record(store, "c", 2, 0)
    assert store.flag("c") is None
    _record(store, "c", 1, 2, flag="prada")
    _record(store, "c", 1, 3, flag="coverage")
    assert store.flag("c") == "prada" and store.snapshot("c").flag == "prada"
    _record(store, "d", 1, 0)
    assert sorted(store.clients()) == [("c", 4, "prada"), ("d", 1, None)]
    store.reset("c")
    assert store.flag("c") is None and store.snapshot("c").count == 0
    assert store.clients() == [("d", 1, None)]
