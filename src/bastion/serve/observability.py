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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.store.interface import AuditSink

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
#: Distinct client addresses whose unauthenticated requests are counted apart in one audit batch (then "*").
MAX_UNAUTH_CLIENTS = 1_000


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
    client: str = "-"  # the client address (what `bastion hunt` groups token sprays by)

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
            "client": self.client,
        }


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status >= 500:
        return "error"
    return "denied"


class BatchedAuditWriter:
    """Queue + one background thread; ``close()`` flushes everything still queued.

    Never loses a record silently. Records of authenticated requests take one of ``max_queue`` slots
    (:meth:`reserve`, before the request runs) and keep it until their batch is written; a batch whose append
    fails stays pending and is retried every ``retry_s`` while :attr:`failing` is set, so a database held
    locked for a minute delays records but does not drop them. With ``on_failure = "refuse"`` the gateway asks
    :meth:`reserve` first and refuses the request (503) when the trail is failing or full; with ``"count"`` a
    record that finds no slot is counted in :attr:`dropped` (exported as a metric) and logged. Records of
    unauthenticated requests (no identity: bad tokens, floods) take no slot: each batch entry carries their
    count by decision and by client address (at most ``MAX_UNAUTH_CLIENTS`` addresses a batch, then ``*``) and
    the first ``failure_sample`` of them, so they cannot grow the log without bound nor
    crowd out the records of real clients. Whatever is still unwritten at ``close()`` is counted as dropped.
    """

    def __init__(
        self,
        sink: AuditSink,
        *,
        target: str,
        batch_size: int = 500,
        flush_s: float = 1.0,
        max_queue: int = 10_000,
        on_failure: str = "refuse",
        stall_s: float = 2.0,
        failure_sample: int = 20,
        retry_s: float = 0.5,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._sink = sink
        self._target = target
        self._batch = batch_size
        self._flush_s = flush_s
        self._retry_s = retry_s
        self.on_failure = on_failure
        self._stall_s = stall_s
        self._queue: queue.Queue[RequestRecord | tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._slots = threading.Semaphore(max_queue)
        self._sample = failure_sample
        self._lock = threading.Lock()
        self._unauth: dict[str, int] = {}
        self._unauth_sample: list[dict[str, Any]] = []
        self._unauth_clients: dict[tuple[str, str], int] = {}  # (client, decision) -> count, bounded
        self._on_error = on_error
        self.dropped = 0
        self.written = 0
        self.unauthenticated = 0
        self.failing = False
        self._held = 0
        self._busy_since: float | None = None
        self._unauth_pending: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name="bastion-audit-writer", daemon=True)
        self._thread.start()

    def reserve(self, timeout: float = 0.0) -> bool:
        """Take a slot for one request record (waits up to ``timeout``); False when the trail cannot take it:
        the last write failed, or a write has been stuck for longer than ``stall_s`` (refuse mode), or every
        slot is held by records not yet written."""
        if self.on_failure == "refuse" and (self.failing or self.stalled(self._stall_s)):
            return False
        return self._slots.acquire(timeout=timeout) if timeout > 0 else self._slots.acquire(blocking=False)

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve` whose record will not be written (refused request)."""
        self._slots.release()

    def stalled(self, seconds: float) -> bool:
        since = self._busy_since
        return since is not None and time.monotonic() - since > seconds

    def record(self, rec: RequestRecord, *, reserved: bool = False) -> None:
        if rec.identity == "-":
            if reserved:
                self._slots.release()
            with self._lock:
                self.unauthenticated += 1
                self._unauth[rec.decision] = self._unauth.get(rec.decision, 0) + 1
                key = (rec.client, rec.decision)
                if key not in self._unauth_clients and len(self._unauth_clients) >= MAX_UNAUTH_CLIENTS:
                    key = ("*", rec.decision)  # past the bound, further addresses share one count
                self._unauth_clients[key] = self._unauth_clients.get(key, 0) + 1
                if len(self._unauth_sample) < self._sample:
                    self._unauth_sample.append(rec.to_dict())
            return
        if not reserved and not self._slots.acquire(blocking=False):
            with self._lock:
                self.dropped += 1
            if self._on_error is not None:
                self._on_error(OverflowError("audit queue full: request record dropped (counted)"))
            return
        with self._lock:
            self._held += 1
        self._queue.put_nowait(rec)

    def event(self, *, action: str, outcome: str, details: dict[str, Any]) -> None:
        """A security event, appended as its own entry."""
        self._queue.put_nowait((action, outcome, details))

    def _take_unauthenticated(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._unauth:
                return None
            out: dict[str, Any] = {"count": sum(self._unauth.values()), "by_decision": dict(self._unauth)}
            out["sample"] = self._unauth_sample
            out["by_client"] = [
                {"client": c, "decision": d, "count": n} for (c, d), n in self._unauth_clients.items()
            ]
            self._unauth, self._unauth_sample, self._unauth_clients = {}, [], {}
            return out

    def _write(self, records: list[RequestRecord], unauth: dict[str, Any] | None) -> None:
        if not records and unauth is None:
            return
        outcomes = {outcome_of(r.status) for r in records}
        if unauth is not None:
            outcomes.add("denied")
        outcome = "error" if "error" in outcomes else "denied" if "denied" in outcomes else "ok"
        details: dict[str, Any] = {"requests": [r.to_dict() for r in records]}
        if unauth is not None:
            details["unauthenticated"] = unauth
        self._sink.append(
            actor="gateway", action="serve:requests", target=self._target, outcome=outcome, details=details
        )
        self.written += len(records)
        with self._lock:
            self._held -= len(records)
        for _ in records:
            self._slots.release()

    def _flush(self, pending: list[RequestRecord], events: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Write events, then the pending batch; on failure everything stays for the next attempt."""
        self._busy_since = time.monotonic()
        try:
            while events:
                action, outcome, details = events[0]
                self._sink.append(
                    actor="gateway", action=action, target=self._target, outcome=outcome, details=details
                )
                events.pop(0)
            if self._unauth_pending is None:
                self._unauth_pending = self._take_unauthenticated()
            self._write(pending, self._unauth_pending)
            pending.clear()
            self._unauth_pending = None
            self.failing = False
        finally:
            self._busy_since = None

    def _run(self) -> None:
        pending: list[RequestRecord] = []
        events: list[tuple[str, str, dict[str, Any]]] = []
        deadline = time.monotonic() + self._flush_s
        stop = False
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            if item is None:
                stop = True
            elif isinstance(item, tuple):
                events.append(item)
            elif isinstance(item, RequestRecord):
                pending.append(item)
            if not (stop or events or len(pending) >= self._batch or time.monotonic() >= deadline):
                continue
            if stop:  # take whatever is still queued
                while not self._queue.empty():
                    rest = self._queue.get_nowait()
                    if isinstance(rest, RequestRecord):
                        pending.append(rest)
                    elif isinstance(rest, tuple):
                        events.append(rest)
            try:
                self._flush(pending, events)
            except Exception as exc:  # keep everything pending and retry; never drop silently
                self.failing = True
                if self._on_error is not None:
                    self._on_error(exc)
                if stop:
                    return  # close() counts what is left
                deadline = time.monotonic() + self._retry_s
                continue
            if stop:
                return
            deadline = time.monotonic() + self._flush_s

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop; records that could not be written by then are counted in :attr:`dropped`."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        with self._lock:
            lost = self._held + sum(self._unauth.values())
            if self._unauth_pending is not None:
                lost += int(self._unauth_pending["count"])
            self._held = 0
            self.dropped += lost
        if lost and self._on_error is not None:
            self._on_error(RuntimeError(f"{lost} request records could not be written to the audit log"))

    def pending(self) -> int:
        """Records of authenticated requests accepted but not yet written."""
        with self._lock:
            return self._held


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
            "Request records that could not be written to the audit log (counted, never silent)",
            registry=self.registry,
        )
        self.audit_refused = Counter(
            "bastion_gateway_audit_refused_total",
            "Requests refused because the audit trail could not take their record",
            registry=self.registry,
        )
        self.errors = Counter(
            "bastion_gateway_errors_total",
            "Requests that ended in an unexpected error (answered 500, no traceback)",
            ["route"],
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
