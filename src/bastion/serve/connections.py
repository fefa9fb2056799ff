"""Slow-client defences at the HTTP protocol level (uvicorn's httptools protocol, guarded).

uvicorn times out idle keep-alive connections but not a request whose headers or body trickle in: 300
sockets sending one header byte a second held 300 connections open indefinitely. The guarded protocol

* refuses a connection beyond ``max_per_address`` open connections from one client address, or beyond
  ``max_total`` in all (closed at once, before anything is read);
* gives a request ``header_timeout_s`` from its first byte (or from the connection's opening) to complete its
  headers and ``body_timeout_s`` from then to complete its body; past either it answers ``408`` (when no
  response has started) and closes the connection.

The deadlines are absolute, so a client cannot keep a request alive by sending a byte now and then.
:func:`uvicorn_options` gives ``uvicorn.run``/``uvicorn.Config`` the protocol and keep-alive setting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections import Counter
from typing import Any

from bastion.serve.config import ConnectionsConfig

_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 29\r\n"
    b'connection: close\r\n\r\n{"error":"request timed out"}'
)


class ConnectionTracker:
    """Open connections per client address (thread-safe; one per server process)."""

    def __init__(self, *, max_per_address: int, max_total: int) -> None:
        self._per = max_per_address
        self._max = max_total
        self._open: Counter[str] = Counter()
        self._total = 0
        self._lock = threading.Lock()
        self.refused = 0
        self.timed_out = 0

    def open(self, address: str) -> bool:
        with self._lock:
            if self._total >= self._max or self._open[address] >= self._per:
                self.refused += 1
                return False
            self._open[address] += 1
            self._total += 1
            return True

    def close(self, address: str) -> None:
        with self._lock:
            self._open[address] -= 1
            self._total -= 1
            if self._open[address] <= 0:
                del self._open[address]

    def count(self, address: str | None = None) -> int:
        with self._lock:
            return self._total if address is None else self._open.get(address, 0)


def guarded_protocol(config: ConnectionsConfig, tracker: ConnectionTracker | None = None) -> type[Any]:
    """A uvicorn HTTP protocol class enforcing ``config`` (connection caps, header and body deadlines)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
        tracker = ConnectionTracker(max_per_address=1, max_total=1)
        header_s = 10.0
        body_s = 30.0

        @classmethod
        def configure(cls, config: ConnectionsConfig, tracker: ConnectionTracker | None = None) -> None:
            cls.tracker = tracker or ConnectionTracker(
                max_per_address=config.max_per_address, max_total=config.max_total
            )
            cls.header_s = float(config.header_timeout_s)
            cls.body_s = float(config.body_timeout_s)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._bastion_deadline: asyncio.TimerHandle | None = None
            self._bastion_address = self.client[0] if self.client else "-"
            self._bastion_counted = self.tracker.open(self._bastion_address)
            if not self._bastion_counted:
                transport.abort()
                return
            self._bastion_arm(self.header_s)

        def _bastion_arm(self, seconds: float) -> None:
            self._bastion_cancel()
            self._bastion_deadline = self.loop.call_later(seconds, self._bastion_expired)

        def _bastion_cancel(self) -> None:
            handle = getattr(self, "_bastion_deadline", None)
            if handle is not None:
                handle.cancel()
                self._bastion_deadline = None

        def _bastion_expired(self) -> None:
            self._bastion_deadline = None
            if self.transport.is_closing():
                return
            self.tracker.timed_out += 1
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                if cycle is not None and not cycle.response_complete:
                    cycle.disconnected = True  # the app's receive() now sees a disconnect
                    cycle.message_event.set()
                self.transport.write(_408)
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._bastion_deadline is None:
                self._bastion_arm(self.header_s)

        def on_headers_complete(self) -> None:
            self._bastion_arm(self.body_s)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._bastion_cancel()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._bastion_cancel()
            if getattr(self, "_bastion_counted", False):
                self._bastion_counted = False
                self.tracker.close(self._bastion_address)
            super().connection_lost(exc)

    GuardedHttpToolsProtocol.configure(config, tracker)
    return GuardedHttpToolsProtocol


WORKER_PROTOCOL = "bastion.serve.connections:WorkerProtocol"


def __getattr__(name: str) -> Any:
    """``WorkerProtocol``: the class ``uvicorn --workers`` loads by name in each worker process (before the
    app); :func:`configure_worker` sets its limits once the worker has read its gateway configuration."""
    if name == "WorkerProtocol":
        cls = globals().get("_worker_protocol")
        if cls is None:
            cls = globals()["_worker_protocol"] = guarded_protocol(ConnectionsConfig())
        return cls
    raise AttributeError(name)


def configure_worker(config: ConnectionsConfig) -> None:
    __getattr__("WorkerProtocol").configure(config)


def uvicorn_options(config: ConnectionsConfig, tracker: ConnectionTracker | None = None) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for a gateway: the guarded protocol, keep-alive timeout and
    proxy headers (see ``proxy_options``)."""
    return {
        "http": guarded_protocol(config, tracker),
        "timeout_keep_alive": float(config.keep_alive_s),
        **proxy_options(config),
    }


def proxy_options(config: ConnectionsConfig) -> dict[str, Any]:
    """``X-Forwarded-For`` is honoured only from the configured ``trusted_proxies``; with none (default)
    uvicorn's proxy-header handling is off and the TCP peer is the client address."""
    if not config.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(config.trusted_proxies)}


def client_host(client: Any) -> str:
    """The address to record for a request's peer (an ASGI ``scope["client"]`` tuple, Starlette's
    ``request.client`` or a bare string): one IP address in its canonical form, else ``"-"``. A forwarded
    header that slipped through (a network such as ``10.20.0.0/16``, a name, a list) never becomes a client
    a finding could name or a block could cover."""
    if client is None:
        return "-"
    host = (
        client
        if isinstance(client, str)
        else (client[0] if isinstance(client, tuple | list) else client.host)
    )
    try:
        return str(ipaddress.ip_address(str(host).strip("[]")))
    except ValueError:
        return "-"


__all__ = [
    "WORKER_PROTOCOL",
    "ConnectionTracker",
    "client_host",
    "configure_worker",
    "guarded_protocol",
    "proxy_options",
    "uvicorn_options",
]
