"""Request audit records (batched into the Merkle audit log), Prometheus metrics and JSON logs.

Every request becomes one record (identity, model version, decision, status, latency). A background thread
drains the queue and appends one audit-log entry per batch (``serve:requests``, up to ``batch_size`` records
or ``flush_s`` seconds), so the signed Merkle log holds every request while the request path only enqueues.
Security events (a client flagged by the extraction monitor, a key-release denial) are appended on their own.
Logs are JSON lines and never contain tokens or payloads: only the fields listed in :data:`LOG_FIELDS`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

LOG_FIELDS = (
    "event",
    "identity",
    "role",
    "model",
    "version",
    "method",
    "path",
    "status",
    "decision",
    "latency_ms",
    "reason",
)


class AuditSink(Protocol):
    """What ``bastion.store.auditlog.AuditLog`` offers; tests and replicas pass the real log."""

    def append(
        self, *, actor: str, action: str, target: str, outcome: str, details: Mapping[str, Any] | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class RequestRecord:
    identity: str
    role: str
    model: str
    version: str
    method: str
    path: str
    status: int
    decision: str
    latency_ms: float
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "role": self.role,
            "model": self.model,
            "version": self.version,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "decision": self.decision,
            "latency_ms": round(self.latency_ms, 3),
            "ts": round(self.ts, 3),
        }


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status >= 500:
        return "error"
    return "denied"


class BatchedAuditWriter:
    """Queue + one background thread; ``close()`` flushes everything still queued."""

    def __init__(
        self,
        sink: AuditSink,
        *,
        target: str,
        batch_size: int = 500,
        flush_s: float = 1.0,
        max_queue: int = 100_000,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._sink = sink
        self._target = target
        self._batch = batch_size
        self._flush_s = flush_s
        self._queue: queue.Queue[RequestRecord | tuple[str, str, dict[str, Any]] | None] = queue.Queue(
            max_queue
        )
        self._on_error = on_error
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="bastion-audit-writer", daemon=True)
        self._thread.start()

    def record(self, rec: RequestRecord) -> None:
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            self.dropped += 1

    def event(self, *, action: str, outcome: str, details: dict[str, Any]) -> None:
        """A security event, appended as its own entry (blocks briefly when the queue is full)."""
        self._queue.put((action, outcome, details), timeout=5)

    def _write(self, records: list[RequestRecord]) -> None:
        if not records:
            return
        outcomes = {outcome_of(r.status) for r in records}
        outcome = "error" if "error" in outcomes else "denied" if "denied" in outcomes else "ok"
        self._sink.append(
            actor="gateway",
            action="serve:requests",
            target=self._target,
            outcome=outcome,
            details={"requests": [r.to_dict() for r in records]},
        )
        self.written += len(records)

    def _run(self) -> None:
        pending: list[RequestRecord] = []
        deadline = time.monotonic() + self._flush_s
        stop = False
        while not stop:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            try:
                if item is None:
                    stop = True
                elif isinstance(item, tuple):
                    action, outcome, details = item
                    self._sink.append(
                        actor="gateway", action=action, target=self._target, outcome=outcome, details=details
                    )
                elif isinstance(item, RequestRecord):
                    pending.append(item)
                if stop or len(pending) >= self._batch or time.monotonic() >= deadline:
                    self._write(pending)
                    pending = []
                    deadline = time.monotonic() + self._flush_s
            except Exception as exc:  # the writer must survive a database hiccup; report and go on
                pending = []
                if self._on_error is not None:
                    self._on_error(exc)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a fixed set of fields (no free-form payloads)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in LOG_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        return json.dumps(out, separators=(",", ":"))


def gateway_logger(*, stream: Any = None, level: int = logging.INFO) -> logging.Logger:
    logger = logging.getLogger("bastion.serve")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class Metrics:
    """Prometheus metrics in a registry of their own (one per app, so tests can run several)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bastion_gateway_requests_total",
            "Requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_gateway_request_seconds",
            "Request latency inside the gateway",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.denials = Counter(
            "bastion_gateway_denials_total", "Denied requests by reason", ["reason"], registry=self.registry
        )
        self.flags = Counter(
            "bastion_gateway_extraction_flags_total",
            "Clients flagged by the extraction monitor",
            registry=self.registry,
        )
        self.audit_dropped = Gauge(
            "bastion_gateway_audit_dropped",
            "Request records dropped because the audit queue was full",
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = [
    "LOG_FIELDS",
    "AuditSink",
    "BatchedAuditWriter",
    "JsonFormatter",
    "Metrics",
    "RequestRecord",
    "gateway_logger",
    "outcome_of",
]
