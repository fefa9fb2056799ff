"""A flood of requests the gateway already refuses (blocked address, over its rate) adds one event per
client and batch, not one per request (issue 17 M8); so does a flood of refused tokens, which the hunting
rules, the rollup and the evidence check count whole (``Event.count``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bastion.events.collect import events_from_entry
from bastion.serve.observability import BatchedAuditWriter, RequestRecord


class _Entry:
    def __init__(self, index: int, row: dict[str, Any]) -> None:
        self.index = index
        self.timestamp = dt.datetime.now(dt.UTC).isoformat()
        self.actor, self.action, self.target = row["actor"], row["action"], row["target"]
        self.outcome, self.details = row.get("outcome", "ok"), row.get("details") or {}


class _Audit:
    def __init__(self) -> None:
        self.entries: list[_Entry] = []

    def append(self, **row: Any) -> Any:
        self.entries.append(_Entry(len(self.entries) + 1, row))
        return self.entries[-1]


def _events(decisions: list[tuple[int, str]], n: int) -> list[Any]:
    audit = _Audit()
    writer = BatchedAuditWriter(audit, target="m:1", flush_s=60.0)
    now = time.time()
    for i in range(n):
        status, decision = decisions[i % len(decisions)]
        writer.record(
            RequestRecord("-", "-", "m", "1", "POST", "infer", status, decision, 0.1, now, "203.0.113.66")
        )
    writer.close()
    return [e for entry in audit.entries for e in events_from_entry(entry)]


def test_refused_before_any_check_is_one_counted_event() -> None:
    flood = _events([(403, "deny:blocked"), (429, "deny:rate-address")], 6000)
    assert len(flood) == 2  # was 6,000 rows
    assert sorted((e.kind, e.count) for e in flood) == [("rate-limit", 3000), ("request", 3000)]
    spray = _events([(401, "deny:auth")], 300)
    # refused tokens too: one row with its count (before: 300 rows); the spray rule sums the counts
    assert [(e.kind, e.count) for e in spray] == [("auth-failure", 300)]
