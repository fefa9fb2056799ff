"""The gateway's view of the response state: is this client or identity blocked, is this client throttled?

:class:`ResponseGate` re-reads the signed state (:mod:`bastion.respond.state`) when its file changes, checking
at most every ``reload_s`` seconds (one ``stat``), so a ``bastion respond`` action reaches a running gateway
within that time without a restart. It fails closed: a state that fails its signature check refuses every
request (and says why once in the log) until a valid state is written again; so does a state file that is
missing or older than the latest one the audit log records (:func:`bastion.store.response_state.load_current`:
deleting or rolling back the file does not lift a block), and, when the log has witnesses, a home whose log
is behind them (:mod:`bastion.respond.rollback`: the whole home rolled back to an older snapshot).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError, IntegrityError, InvalidInput, ServiceError
from bastion.respond.rollback import rollback_check
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
        witnessed: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._verifier = verifier
        self._logged = logged
        self.witnessed = witnessed  # raises when the log is behind its witnesses (respond.rollback)
        self._reload_s = reload_s
        self._now = now
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stamp: tuple[int, int, int] | None = None
        self._retry = False
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
            kwargs["logged"] = LoggedState(engine, signer).latest
        audit = getattr(vault, "audit", None)
        if audit is not None and "witnessed" not in kwargs:
            kwargs["witnessed"] = rollback_check(audit, home=settings.home)
        return cls(state_path(settings.home), signer, **kwargs)

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and self._checked > float("-inf") and not self._retry:
            return
        self._retry = False
        try:
            state = load_verified(self.path, self._verifier)
            if self._logged is not None:
                check_current(state if stamp is not None else None, self._logged())
            if self.witnessed is not None:
                self.witnessed()
            self._state = state
        except (IntegrityError, ServiceError) as exc:  # ServiceError: a witness that cannot be read
            if self._state is not None:
                logger.error("response state refused (%s): refusing every request", exc)
            self._state = None
            self._retry = isinstance(exc, ServiceError)  # unreachable now: asked again at the next reload
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


Fetch = Callable[[], Mapping[str, Any]]


def _fingerprint(verifier: Any) -> str:
    """``sha256:`` and 16 hex digits of the public key's PEM (to compare with ``bastion log key``'s)."""
    import hashlib

    return "sha256:" + hashlib.sha256(verifier.public_key_pem().strip().encode()).hexdigest()[:16]


class RemoteResponseGate(ResponseGate):
    """The gate of a gateway without a home (``bastion serve MODEL --server URL``): the signed state comes
    from the server's ``GET /v1/respond/state`` (``fetch``), refreshed every ``refresh_s`` by a background
    thread (:meth:`start`), and is trusted only when:

    - its signature verifies with the pinned key: ``public_key_pem`` (``bastion serve --server URL
      --response-key PEM``, the server home's ``bastion log key``), or else the key of the first answer,
      pinned for the process's life (trust on first use: logged as a warning, since a first answer from a
      man in the middle would be pinned instead); an answer naming or signed by another key is refused;
    - its serial is not below the highest one this process has accepted (no rollback by a replayed answer);
    - it was verified within ``max_age_s`` (the server unreachable or answering garbage for longer: refuse).

    Otherwise :meth:`state` is None and every request is refused (fail closed), as for a local gate.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        public_key_pem: str | bytes | None = None,
        refresh_s: float = 2.0,
        max_age_s: float = 10.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        from bastion.crypto.signing import Ed25519Verifier

        self._fetch = fetch
        try:
            self._pinned = None if public_key_pem is None else Ed25519Verifier.from_pem(public_key_pem)
        except (InvalidInput, UnicodeEncodeError) as exc:  # not a PEM, or not an Ed25519 public key
            raise ConfigError("the response-state key is not an Ed25519 public key (PEM)") from exc
        self._given = self._pinned is not None
        self.last_error = ""  # why the last refresh was refused ("" after one was accepted)
        self._refresh_s = refresh_s
        self._max_age_s = max_age_s
        self._now = now
        self._lock = threading.Lock()
        self._state = None
        self._good_at: float | None = None
        self._serial = -1
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = Path("-")
        self.refresh()

    def refresh(self) -> bool:
        """Fetch and verify the server's state now; True when it was accepted."""
        import base64

        from bastion.crypto.signing import Ed25519Verifier
        from bastion.store.response_state import verify_signed

        try:
            answer = self._fetch()
            pem = answer.get("public_key_pem")
            verifier = self._pinned or Ed25519Verifier.from_pem(str(pem))
            if self._pinned is not None and str(pem).strip() != self._pinned.public_key_pem().strip():
                raise IntegrityError(
                    "the response state is signed by another key than the pinned one "
                    + ("(--response-key)" if self._given else "(the first answer's)")
                    + ": another server, or someone between this gateway and it"
                )
            raw = base64.b64decode(str(answer.get("signed")), validate=True)
            state = verify_signed(raw, verifier)
            with self._lock:
                if state.serial < self._serial:
                    raise IntegrityError(
                        f"the server sent an older response state (serial {state.serial} < {self._serial})"
                    )
                if self._pinned is None:
                    logger.warning(
                        "response state key pinned on first use (%s): nothing vouches for it; pin the "
                        "server's key with --response-key (its owner prints it: bastion log key)",
                        _fingerprint(verifier),
                    )
                self._pinned = verifier
                self._serial, self._state, self._good_at = state.serial, state, self._now()
            if self._failing:
                logger.warning("response state from the server verified again (serial %d)", state.serial)
            self._failing, self.last_error = False, ""
            return True
        except Exception as exc:  # unreachable, refused, unsigned, forged, rolled back: all fail closed
            with self._lock:
                self._state = None
            self.last_error = str(exc) or type(exc).__name__
            if not self._failing:
                logger.error("response state from the server refused (%s): refusing every request", exc)
            self._failing = True
            return False

    def state(self) -> ResponseState | None:
        with self._lock:
            if self._good_at is None or self._now() - self._good_at > self._max_age_s:
                return None
            return self._state

    def start(self) -> RemoteResponseGate:
        """Refresh every ``refresh_s`` in a daemon thread until :meth:`close`."""
        if self._thread is None:

            def run() -> None:
                while not self._stop.wait(self._refresh_s):
                    self.refresh()

            self._thread = threading.Thread(target=run, name="bastion-response-state", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


__all__ = ["RemoteResponseGate", "ResponseGate"]
