"""``POST /v1/gateway/audit`` details: the gateway writer's real output passes, malformed records do not
(issue 17, attack17c F5: one malformed record used to stop the event collector for good)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.errors import InvalidInput
from bastion.serve.observability import BatchedAuditWriter, RequestRecord
from bastion.server.routers.gateway_audit import check_details


class _Sink:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, **entry: Any) -> None:
        self.entries.append(entry)


def _written() -> list[dict[str, Any]]:
    """What the real batched writer sends: request records, a refused-token aggregate, a monitor flag."""
    sink = _Sink()
    writer = BatchedAuditWriter(sink, target="m0:1", flush_s=0.05)  # type: ignore[arg-type]
    writer.record(RequestRecord("app", "consumer", "m0", "1", "POST", "infer", 200, "allow", 1.5, 1e9, "::1"))
    for _ in range(3):
        writer.record(
            RequestRecord("-", "-", "m0", "1", "POST", "infer", 401, "deny:auth", 0.2, 1e9, "192.0.2.1")
        )
    writer.event(action="serve:monitor-flag", outcome="denied", details={"identity": "app", "reason": "r"})
    writer.close()
    return sink.entries


def test_the_gateway_writers_own_records_pass() -> None:
    entries = _written()
    assert {e["action"] for e in entries} == {"serve:requests", "serve:monitor-flag"}
    for entry in entries:
        check_details(entry["action"], entry["details"])


GOOD = {"identity": "x", "client": "192.0.2.1", "status": 200, "decision": "allow", "ts": 1.0}


@pytest.mark.parametrize(
    "details",
    [
        {"requests": [{**GOOD, "ts": "not-a-number"}]},
        {"requests": [{**GOOD, "status": "abc"}]},
        {"requests": [{**GOOD, "status": 10**12}]},
        {"requests": ["just a string"]},
        {"requests": [{**GOOD, "extra": 1}]},
        {
            "requests": [],
            "unauthenticated": {"by_client": [{"client": "c", "decision": "d", "count": 10**30}]},
        },
        {"requests": [], "other": 1},
    ],
)
def test_malformed_batches_are_refused(details: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="serve:requests details"):
        check_details("serve:requests", details)


def test_security_events_are_flat() -> None:
    check_details("serve:drift-alert", {"model": "m0", "alerts": ["input drift: x"], "samples": 50})
    with pytest.raises(InvalidInput):
        check_details("serve:monitor-flag", {"identity": {"nested": "object"}})
    with pytest.raises(InvalidInput):
        check_details("serve:monitor-flag", {f"k{i}": 1 for i in range(40)})
