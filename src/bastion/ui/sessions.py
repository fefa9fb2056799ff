"""Dashboard sessions: token login, a random session id in the cookie; the token never leaves the server.

A login checks the token against the project's identity store (the same check as every API call); an
identity without both ``registry:read`` and ``log:read`` (auditor and admin roles) is refused. The session
holds a vault opened *as that identity*, so every page reads with the library's own permission checks, and
the token (in memory only) is re-checked on every request: a revoked token or a disabled identity ends the
session at its next click. The cookie holds 32 random bytes (``secrets``), looked up by their SHA-256, so a
memory dump of the table does not yield live cookie values. Sessions expire after ``idle_s`` without a request
and ``max_age_s`` in all; at most ``max_sessions`` live at once (the oldest is closed first).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticate = authenticate
        self._open_vault = open_vault
        self.idle_s, self.max_age_s, self.max_sessions = idle_s, max_age_s, max_sessions
        self._max_failures, self._window = max_failures, failure_window_s
        self._clock = clock
        self._table: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def throttled(self, client: str) -> bool:
        """Too many failed logins from ``client`` within the window."""
        now = self._clock()
        with self._lock:
            q = self._failures.get(client)
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

    def login(self, token: str, *, client: str) -> str:
        """A new session id for ``token``; AuthenticationFailed (bad token) or AccessDenied (role)."""
        try:
            identity = self._authenticate(token)
        except AuthenticationFailed:
            self._failed(client)
            raise
        if not may_view(identity):
            raise AccessDenied(f"{identity.name} ({identity.role}) may not view the dashboard")
        vault = self._open_vault(token)
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        evicted: list[Session] = []
        with self._lock:
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


__all__ = ["COOKIE", "REQUIRED_PERMISSIONS", "SECURE_COOKIE", "Session", "Sessions", "may_view"]
