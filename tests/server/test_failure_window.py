"""The server's failed-authentication windows reach the hunt in time (issue 17 M9): written when the spray
threshold is crossed, flushed by a timer without a later request, and timed at the window's start."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from bastion.events import EventStore
from bastion.events.collect import events_from_entry
from bastion.hunt import hunt
from bastion.server.state import SPRAY_FAILURES, FailureLog


class _Log:
    def __init__(self, clock: list[float]) -> None:
        self.rows: list[Any] = []
        self._clock = clock

    def append(self, **row: Any) -> None:
        stamp = dt.datetime.fromtimestamp(self._clock[0], dt.UTC).isoformat()
        self.rows.append(_Entry(len(self.rows) + 1, stamp, **row))


class _Entry:
    def __init__(self, index: int, timestamp: str, **row: Any) -> None:
        self.index, self.timestamp = index, timestamp
        self.actor, self.action, self.target = row["actor"], row["action"], row["target"]
        self.outcome, self.details = row["outcome"], row["details"]


def _spray(write_at: int | None, tmp: Path) -> tuple[list[Any], list[Any]]:
    """60 refused tokens from one address in 30 s; the hunt runs 31 s in, before the window has passed."""
    clock = [1_796_000_000.0]
    log = _Log(clock)
    failures = FailureLog(log, window_s=60, write_at=write_at, now=lambda: clock[0], wall=lambda: clock[0])
    for _ in range(60):
        failures.failed("203.0.113.5")
        clock[0] += 0.5
    store = EventStore(f"sqlite:///{tmp / f'{write_at}.db'}")
    store.append([e for row in log.rows for e in events_from_entry(row)])
    return log.rows, list(hunt(store=store, anomaly=False).findings)


def test_a_spray_is_written_when_it_crosses_the_threshold(tmp_path: Path) -> None:
    rows, findings = _spray(None, tmp_path)  # as before: the first failure alone until the window passes
    assert [r.details["count"] for r in rows] == [1] and findings == []
    rows, findings = _spray(SPRAY_FAILURES, tmp_path)
    assert [r.details["count"] for r in rows] == [1, SPRAY_FAILURES - 1]
    assert rows[1].details["window_start"] == 1_796_000_000.0
    spray = [f for f in findings if f.rule_id.endswith("0302")]
    assert spray and spray[0].client == "203.0.113.5"
    assert spray[0].first_seen == 1_796_000_000.0  # timed at the window's start, not when it was written


def test_the_timer_flushes_a_window_without_a_later_request() -> None:
    written: list[dict[str, Any]] = []

    class Log:
        def append(self, **row: Any) -> None:
            written.append(row)

    for timer in (False, True):
        written.clear()
        failures = FailureLog(Log(), window_s=0.2)
        if timer:
            failures.start_timer(0.05)
        for _ in range(5):
            failures.failed("198.51.100.9")
        time.sleep(0.6)  # no further request: only the timer can write the window's count
        counts = [r["details"]["count"] for r in written]
        assert counts == ([1, 4] if timer else [1])
        failures.close()  # shutdown writes what is left
        assert [r["details"]["count"] for r in written] == [1, 4]
