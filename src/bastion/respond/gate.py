"""The gateway's view of the response state: is this client or identity blocked, is this client throttled?

:class:`ResponseGate` re-reads the signed state (:mod:`bastion.respond.state`) when its file changes, checking
at most every ``reload_s`` seconds (one ``stat``), so a ``bastion respond`` action reaches a running gateway
within that time without a restart. It fails closed: a state that fails its signature check refuses every
request (and says why once in the log) until a valid state is written again; so does a state file that is
missing or older than the latest one the audit log records (:func:`bastion.store.response_state.load_current`:
deleting or rolling back the file does not lift a block).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bastion.errors import IntegrityError
from bastion.respond.state import ResponseState, load_verified, state_path
from bastion.store.response_state import LoggedState, check_current

logger = logging.getLogger(__name__)


class ResponseGate:
    """Thread-safe reader of the response state for the request path."""

    def __init__(
        self,
        path: Path,
        verifier: Any,
        *,
        reload_s: float = 0.5,
        now: Callable[[], float] = time.monotonic,
        logged: Callable[[], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.path = path
        self._verifier = verifier
        self._logged = logged
        self._reload_s = reload_s
        self._now = now
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stamp: tuple[int, int, int] | None = None
        self._state: ResponseState | None = ResponseState()
        self._load()

    @classmethod
    def for_vault(cls, vault: Any, **kwargs: Any) -> ResponseGate | None:
        """The gate of a local vault's home (verified with the home's log key); None without one."""
        settings, signer = getattr(vault, "settings", None), getattr(vault, "signer", None)
        if settings is None or signer is None or not hasattr(signer, "verify"):
            return None
        engine = getattr(vault, "engine", None)
        if engine is not None and "logged" not in kwargs:
            kwargs["logged"] = LoggedState(engine).latest
        return cls(state_path(settings.home), signer, **kwargs)

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and self._checked > float("-inf"):
            return
        try:
            state = load_verified(self.path, self._verifier)
            if self._logged is not None:
                check_current(state if stamp is not None else None, self._logged())
            self._state = state
        except IntegrityError as exc:
            if self._state is not None:
                logger.error("response state refused (%s): refusing every request", exc)
            self._state = None
        self._stamp = stamp

    def state(self) -> ResponseState | None:
        """The current state (None: the state is invalid and everything is refused)."""
        now = self._now()
        with self._lock:
            if now - self._checked >= self._reload_s:
                self._load()
                self._checked = now
            return self._state

    def refuses(self, *, client: str = "-", identity: str = "-") -> bool:
        state = self.state()
        if state is None:
            return True
        return state.client_blocked(client) or identity in state.blocked_identities

    def throttles(self, client: str) -> bool:
        state = self.state()
        return state is None or state.client_throttled(client)

    def quarantined(self, model: str, version: str | int) -> bool:
        state = self.state()
        return (
            state is None
            or model in state.quarantined_models
            or f"{model}:{version}" in state.quarantined_models
        )


__all__ = ["ResponseGate"]
