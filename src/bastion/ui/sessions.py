"""Dashboard sessions: token login, a random session id in the cookie; the token never leaves the server.

A login checks the token against the project's identity store (the same check as every API call); an
identity without both ``registry:read`` and ``log:read`` (auditor and admin roles) is refused. The session
holds a vault opened *as that identity*, so every page reads with the library's own permission checks, and
the token (in memory only) is re-checked on every request: a revoked token or a disabled identity ends the
session at its next click. The cookie holds 32 random bytes (``secrets``), looked up by their SHA-256, so a
memory dump of the table does not yield live cookie values. Sessions expire after ``idle_s`` without a request
and ``max_age_s`` in all; at most ``max_sessions`` live at once (the oldest is closed first), and at most
``max_per_identity`` per identity (its own oldest is closed first: one auditor logging in again and again
cannot push everyone else out). Successful logins are limited per identity (``max_logins`` a window:
:class:`LoginThrottled`), failed ones per client address (:meth:`Sessions.throttled`); ``on_failure(client)``
is told of every failed login (the dashboard logs them in aggregate, per address, like the server); an IPv6
client counts as its /64 for both (:func:`source_of`).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bastion.access import Identity, allowed
from bastion.errors import AccessDenied, AuthenticationFailed, BastionError

REQUIRED_PERMISSIONS = ("registry:read", "log:read")
COOKIE = "bastion_ui"
SECURE_COOKIE = "__Host-bastion_ui"  # the __Host- prefix: Secure, Path=/, no Domain (browser-enforced)


def may_view(identity: Identity) -> bool:
    """Auditor and above: the identity may read the registry's records and the audit log."""
    return all(allowed(identity, p) for p in REQUIRED_PERMISSIONS)


@dataclass
class Session:
    vault: Any
    identity: Identity
    token: str = field(repr=False)
    created: float
    seen: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoginThrottled(AccessDenied):
    """Too many successful logins by one identity within the window (HTTP 429)."""


def source_of(client: str) -> str:
    """Who failed logins are counted against: an IPv6 client's /64 (one host holds a whole /64, so rotating
    addresses in it is free), an IPv4 address as it is (a /24 is often many people)."""
    try:
        addr = ipaddress.ip_address(client)
    except ValueError:
        return client
    if addr.version == 6 and addr.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return client


def same_origin(*, origin: str | None, fetch_site: str | None, host: str | None) -> bool:
    """A state-changing request (the login form) came from this site. ``Sec-Fetch-Site`` decides when sent
    (``same-origin`` or ``none``); without it, ``Origin`` must name this ``Host`` (``null`` never does: the
    dashboard's ``Referrer-Policy: no-referrer`` makes browsers send ``null`` even for its own form, but
    every such browser also sends ``Sec-Fetch-Site``). A client that sends neither (curl, a script) is let
    through: it carries no other site's intent."""
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("same-origin", "none")
    if origin is None:
        return True
    netloc = urlsplit(origin.strip()).netloc.lower()
    return bool(netloc) and host is not None and netloc == host.strip().lower()


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class Sessions:
    """The server-side session table. ``open_vault(token)`` opens the vault as the token's identity."""

    def __init__(
        self,
        *,
        authenticate: Callable[[str], Identity],
        open_vault: Callable[[str], Any],
        idle_s: float = 900.0,
        max_age_s: float = 8 * 3600.0,
        max_sessions: int = 32,
        max_failures: int = 10,
        failure_window_s: float = 60.0,
        max_per_identity: int = 4,
        max_logins: int = 10,
        on_failure: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticate = authenticate
        self._open_vault = open_vault
        self.idle_s, self.max_age_s, self.max_sessions = idle_s, max_age_s, max_sessions
        self._max_failures, self._window = max_failures, failure_window_s
        self._clock = clock
        self._table: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._logins: dict[str, deque[float]] = {}
        self.max_per_identity, self._max_logins = max_per_identity, max_logins
        self._on_failure = on_failure
        self._lock = threading.Lock()

    def throttled(self, client: str) -> bool:
        """Too many failed logins from ``client`` within the window."""
        now = self._clock()
        with self._lock:
            q = self._failures.get(source_of(client))
            if q is None:
                return False
            while q and now - q[0] > self._window:
                q.popleft()
            return len(q) >= self._max_failures

    def _failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures.setdefault(client, deque()).append(self._clock())
        if self._on_failure is not None:
            self._on_failure(client)

    def _login_allowed(self, name: str) -> bool:
        """Count a successful login of ``name``; False past ``max_logins`` within the window."""
        now = self._clock()
        with self._lock:
            if len(self._logins) > 10_000:
                self._logins.clear()
            q = self._logins.setdefault(name, deque())
            while q and now - q[0] > self._window:
                q.popleft()
            if len(q) >= self._max_logins:
                return False
            q.append(now)
            return True

    def login(self, token: str, *, client: str) -> str:
        """A new session id for ``token``; AuthenticationFailed (bad token) or AccessDenied (role)."""
        try:
            identity = self._authenticate(token)
        except AuthenticationFailed:
            self._failed(source_of(client))
            raise
        if not may_view(identity):
            raise AccessDenied(f"{identity.name} ({identity.role}) may not view the dashboard")
        if not self._login_allowed(identity.name):
            raise LoginThrottled(f"too many sign-ins by {identity.name}: wait a minute")
        vault = self._open_vault(token)
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        evicted: list[Session] = []
        with self._lock:
            mine = sorted(
                (k for k, v in self._table.items() if v.identity.name == identity.name),
                key=lambda k: self._table[k].seen,
            )
            for k in mine[: max(0, len(mine) - self.max_per_identity + 1)]:
                evicted.append(self._table.pop(k))  # this identity's oldest: never someone else's
            self._table[_key(sid)] = Session(
                vault=vault, identity=identity, token=token, created=now, seen=now
            )
            while len(self._table) > self.max_sessions:
                oldest = min(self._table, key=lambda k: self._table[k].seen)
                evicted.append(self._table.pop(oldest))
        for s in evicted:
            _close(s)
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The live session for cookie value ``sid`` (re-checking its token), else None."""
        if not sid or len(sid) > 128:
            return None
        now = self._clock()
        with self._lock:
            session = self._table.get(_key(sid))
            if session is None:
                return None
            if now - session.seen > self.idle_s or now - session.created > self.max_age_s:
                self._table.pop(_key(sid), None)
                expired: Session | None = session
            else:
                expired = None
                session.seen = now
        if expired is not None:
            _close(expired)
            return None
        try:
            identity = session.vault.authenticate(session.token)  # revoked or disabled: the session ends
        except BastionError:
            self.logout(sid)
            return None
        session.identity = identity
        return session

    def logout(self, sid: str | None) -> None:
        if not sid:
            return
        with self._lock:
            session = self._table.pop(_key(sid), None)
        if session is not None:
            _close(session)

    def close(self) -> None:
        with self._lock:
            sessions, self._table = list(self._table.values()), {}
        for s in sessions:
            _close(s)

    def __len__(self) -> int:
        return len(self._table)


def _close(session: Session) -> None:
    with contextlib.suppress(Exception):  # closing a session must not fail a request
        session.vault.close()


__all__ = [
    "COOKIE",
    "REQUIRED_PERMISSIONS",
    "SECURE_COOKIE",
    "LoginThrottled",
    "Session",
    "Sessions",
    "may_view",
    "same_origin",
    "source_of",
]
