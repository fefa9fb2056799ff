"""What a ``bastion server`` process holds: the project opened once, and one Vault per request.

The home is opened once (the passphrase KDF, the key ring, the signing keys, the database engine, the audit
log); each request then gets a :class:`~bastion.vault.Vault` built from those shared components for the
identity its bearer token names. The Vault's own permission checks and audit entries run unchanged, so the
server writes exactly the entries local mode writes for that identity. Tokens are checked on **every**
request (no cache): a revocation takes effect on the next call.

Length: the per-process state (project, failure log, releases, response gate) and the per-request Vault
factory share the process's components and their lifecycle; splitting them would pass each of them around.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.access import AccessControl, Identity
from bastion.crypto.interface import WrapHolder
from bastion.errors import AccessDenied, AuthenticationFailed, ConfigError
from bastion.respond.gate import ResponseGate
from bastion.respond.rollback import rollback_check
from bastion.serve.auth import Authenticator, JwtVerifier, looks_like_jwt
from bastion.serve.config import RateLimitConfig
from bastion.serve.ratelimit import RateLimiter
from bastion.server.released import GatewayReleases
from bastion.store.response_state import LoggedState, state_path
from bastion.vault import Vault, open_vault
from bastion.vault.interface import Inspector

SPOOL_DIR = "server-spool"
SPRAY_FAILURES = 20  # failed authentications in a window written at once: the token-spray rule's threshold
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    """Limits of one server process (the rest comes from the home's bastion.toml)."""

    max_upload_bytes: int = 64 * 2**30  # one push, all files together (bytes actually received)
    max_upload_files: int = 100_000
    chunk_bytes: int = 1 << 20  # the unit both sides stream in
    per_address: str = "6000/minute"  # requests per client address, before authentication
    auth_failures: str = "60/minute"  # failed authentications per address, then refused before any lookup

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_upload_files <= 0 or self.chunk_bytes < 4096:
            raise ConfigError("server limits must be positive (chunk_bytes at least 4096)")


def settings_from_config(table: Any) -> ServerSettings:
    """``[server]`` of bastion.toml: ``max_upload_bytes``, ``max_upload_files`` (positive integers)."""
    values: dict[str, int] = {}
    for key in ("max_upload_bytes", "max_upload_files"):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"[server] {key} must be a positive integer")
            values[key] = value
    default = ServerSettings()
    return ServerSettings(
        max_upload_bytes=values.get("max_upload_bytes", default.max_upload_bytes),
        max_upload_files=values.get("max_upload_files", default.max_upload_files),
    )


class TooManyRequests(AuthenticationFailed):
    """An address over its request or authentication-failure limit (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(f"{message}: retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ServerState:
    """The opened project plus the per-request vault factory. Build with :meth:`open`."""

    def __init__(
        self,
        *,
        base: Vault,
        settings: ServerSettings | None = None,
        inspectors: Sequence[Inspector] | None = None,
        wrap_holders: Sequence[WrapHolder] | None = None,
    ) -> None:
        """``inspectors`` / ``wrap_holders``: as for ``open_vault`` (None: the installed entry points)."""
        self.base = base
        self._inspectors = None if inspectors is None else list(inspectors)
        self._wrap_holders = None if wrap_holders is None else list(wrap_holders)
        self.settings = settings or settings_from_config(base.settings.section("server"))
        self.home = Path(base.settings.home)
        self._jwt = _jwt_verifier(base)
        # Failed authentications are audit-logged in aggregate (:class:`FailureLog`: at most two entries per
        # source and minute, with the count), and an address that keeps failing is refused before any
        # lookup: a flood of made-up tokens can neither grow the signed log nor guess at speed.
        self.failures = FailureLog(base.audit, write_at=SPRAY_FAILURES)
        self.failures.start_timer()
        quiet = AccessControl(base.engine, QuietFailures(base.audit), sealer=base.access.sealer)  # type: ignore[arg-type]
        self._tokens = quiet.authenticate
        self._limits = RateLimiter(
            config=RateLimitConfig(
                per_address=self.settings.per_address, auth_failures=self.settings.auth_failures
            )
        )
        # /v1/gateway/introspect: failed checks per gateway identity, limited and logged in aggregate too
        self.introspect_limits = RateLimiter(
            config=RateLimitConfig(per_address="6000/minute", auth_failures="30/minute"),
            namespace="introspect",
        )
        self.introspect_failures = FailureLog(base.audit, action="gateway:introspect", immediate=False)
        self.introspect_failures.start_timer()
        self.check_token = self._tokens  # quiet: the caller logs failures (in aggregate)
        # `bastion respond`'s signed state, checked against the log's latest record (load_current): blocks
        # and quarantines apply to every request here too (issue 17 M2), not only at home-based gateways
        self.response_logged = _LockedLogged(LoggedState(base.engine, base.signer))
        self.response = ResponseGate(
            state_path(self.home),
            base.signer,
            reload_s=0.5,
            logged=self.response_logged.latest,
            # the whole home rolled back: behind the log's witnesses (its own and $BASTION_WITNESS)
            witnessed=rollback_check(base.audit, home=self.home),
        )
        # NAME:VERSION released to each gateway identity by attested release: the only targets whose request
        # records that gateway may write into the log (/v1/gateway/audit); kept sealed across restarts
        self._released = GatewayReleases(self.home, base.access.sealer)
        self.spool_root = self.home / SPOOL_DIR
        self.spool_root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.spool_root, 0o700)
        clean_spools(self.spool_root)

    @classmethod
    def open(
        cls,
        *,
        home: str | os.PathLike[str] | None = None,
        passphrase: str | None = None,
        settings: ServerSettings | None = None,
        inspectors: Sequence[Inspector] | None = None,
        wrap_holders: Sequence[WrapHolder] | None = None,
    ) -> ServerState:
        """Open the home as the owner (the server process is the passphrase holder)."""
        base = open_vault(
            home=home, passphrase=passphrase, token=None, inspectors=inspectors, wrap_holders=wrap_holders
        )
        return cls(base=base, settings=settings, inspectors=inspectors, wrap_holders=wrap_holders)

    def close(self) -> None:
        self.failures.close()
        self.introspect_failures.close()
        self.base.close()

    # --- who is calling ------------------------------------------------------------------------------------

    def authenticate(self, header: str | None, *, address: str = "-") -> Identity:
        """``Authorization`` header → identity (AuthenticationFailed otherwise). Checked on every call."""
        self.failures.flush()
        decision = self._limits.address(address)
        if not decision.allowed:
            self.failures.failed(address)
            raise TooManyRequests(
                "too many requests or failed authentications from this address",
                retry_after_s=decision.retry_after_s,
            )
        try:
            token = Authenticator.bearer(header)
            if self._jwt is not None and looks_like_jwt(token):
                return self._jwt.verify(token)
            if not token.startswith("bst_"):
                raise AuthenticationFailed("invalid credentials")
            return self._tokens(token)
        except AuthenticationFailed:
            self._limits.auth_failure(address)
            self.failures.failed(address)
            raise

    def admitted(self, header: str | None, *, address: str = "-") -> Identity:
        """:meth:`authenticate`, then :meth:`admit`: what every ``/v1`` request passes before its body."""
        identity = self.authenticate(header, address=address)
        self.admit(identity, address=address)
        return identity

    def admit(self, identity: Identity, *, address: str = "-") -> None:
        """Refuse (AccessDenied, HTTP 403) an identity or client address that ``bastion respond`` blocked,
        and everyone while the response state fails its checks (missing, rolled back, bad signature: fail
        closed). No route is exempt: ``bastion respond`` and ``--restore-state`` run on the server's home as
        its owner (the passphrase holder), never through the server, so a block cannot lock the owner out."""
        state = self.response.state()
        if state is None:
            raise AccessDenied(
                "the response state failed its checks: every request is refused until the owner restores "
                "it (bastion respond --restore-state on the server's home)"
            )
        if state.client_blocked(address):
            raise AccessDenied(f"client {address} is blocked by bastion respond")
        if identity.name in state.blocked_identities:
            raise AccessDenied(f"identity {identity.name} is blocked by bastion respond")

    def mark_released(self, identity: Identity, ref: str) -> None:
        """``ref`` (NAME:VERSION) was released to the gateway ``identity`` on its attestation evidence."""
        self._released.add(identity.id, ref)

    def was_released(self, identity: Identity, ref: str) -> bool:
        return self._released.contains(identity.id, ref)

    def vault_for(self, identity: Identity) -> Vault:
        """A Vault acting as ``identity`` over the shared components (not to be closed: they are shared)."""
        b = self.base
        vault = Vault(
            settings=b.settings,
            engine=b.engine,
            keys=b.keys,
            blobs=b.blobs,
            audit=b.audit,
            access=AccessControl(b.engine, b.audit, actor=identity, sealer=b.access.sealer),
            identity=identity,
            signer=b.signer,
            inspectors=self._inspectors,  # None: the installed entry points, as in local mode
            wrap_holders=self._wrap_holders,
        )
        if vault.identity != identity:  # pragma: no cover - the facade changed under us: fail closed
            raise ConfigError("internal: the vault does not act as the authenticated identity")
        return vault

    # --- private spool directories -------------------------------------------------------------------------

    @contextlib.contextmanager
    def spool(self) -> Iterator[Path]:
        """A fresh private (0700) directory for one request's upload or pull, removed afterwards."""
        path = self.new_spool()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def new_spool(self) -> Path:
        path = self.spool_root / f"{os.getpid()}-{secrets.token_hex(8)}"
        os.mkdir(path, 0o700)
        return path


class _LockedLogged:
    """:class:`LoggedState` shared by the request threads (it keeps a cursor: one reader at a time)."""

    def __init__(self, logged: LoggedState) -> None:
        self._logged = logged
        self._lock = threading.Lock()

    def latest(self) -> Any:
        with self._lock:
            return self._logged.latest()


class QuietFailures:
    """The audit log as a token check sees it when failures are logged in aggregate (:class:`FailureLog`):
    a plain failed authentication (no details) is not appended; everything else — a token whose sealed
    rows failed their check included — goes through unchanged."""

    def __init__(self, audit: Any) -> None:
        self._audit = audit

    def append(self, *, actor: str, action: str, target: str, outcome: str, details: Any = None) -> Any:
        if action == "auth" and outcome == "denied" and not details:
            return None
        return self._audit.append(actor=actor, action=action, target=target, outcome=outcome, details=details)


class FailureLog:
    """Failed authentications, audit-logged per source in windows of ``window_s``: the first failure of a
    source in a window is appended at once (``count`` 1; with ``immediate`` off it is only counted), the
    rest of that window as one entry with their ``count`` once the window has passed (written by the next
    check, by the timer of :meth:`start_timer`, or at shutdown). With ``write_at``, the count is written as
    soon as the window holds that many failures (the token-spray rule's threshold: the hunt sees the spray
    then, not a window later), and the rest at the window's end. So a source costs at most three signed
    entries a window (two without ``immediate``), however fast it sprays; past ``max_sources`` distinct
    sources in one window, further ones share the source ``*``. Each entry names its window's start
    (``window_start``, unix seconds): the events are timed there, not when the entry was written."""

    def __init__(
        self,
        audit: Any,
        *,
        window_s: float = 60.0,
        max_sources: int = 10_000,
        action: str = "auth",
        immediate: bool = True,
        write_at: int | None = None,
        now: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        self._audit = audit
        self.window_s = window_s
        self._max = max_sources
        self._action = action
        self._immediate = immediate
        self._write_at = write_at
        self._now = now
        self._wall = wall
        self._lock = threading.Lock()
        # source -> [window start (monotonic), failures not yet written, window start (wall), written so far]
        self._open: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def failed(self, source: str) -> None:
        now = self._now()
        due: list[tuple[str, int, float]] = []
        fresh: float | None = None
        with self._lock:
            entry = self._open.get(source)
            if entry is None and len(self._open) >= self._max:
                source = "*"
                entry = self._open.get(source)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                seen = entry[3] + entry[1]
                if self._write_at is not None and entry[1] and seen == self._write_at:
                    due.append((source, int(entry[1]), entry[2]))  # the threshold crossed: write now
                    entry[3], entry[1] = seen, 0
            else:
                fresh = self._wall()
                self._open[source] = [now, 0 if self._immediate else 1, fresh, 1 if self._immediate else 0]
                if entry is not None and entry[1]:
                    due.append((source, int(entry[1]), entry[2]))
        for src, count, start_wall in due:
            self._append(src, count, aggregated=True, window_start=start_wall)
        if self._immediate and fresh is not None:
            self._append(source, 1, aggregated=False, window_start=fresh)

    def flush(self, *, force: bool = False) -> None:
        """Write the counts of every window that has passed (``force``: of every window)."""
        now = self._now()
        due: list[tuple[str, int, float]] = []
        with self._lock:
            if not self._open:
                return
            for src, (start, count, start_wall, _written) in list(self._open.items()):
                if force or now - start >= self.window_s:
                    del self._open[src]
                    if count:
                        due.append((src, int(count), start_wall))
        for src, count, start_wall in due:
            self._append(src, count, aggregated=True, window_start=start_wall)

    def start_timer(self, interval_s: float = 1.0) -> None:
        """Flush passed windows every ``interval_s`` in a daemon thread (until :meth:`close`): a spray's
        count is written when its window ends even if no request follows."""
        if self._timer is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.flush()
                except Exception as exc:  # the log is closed or failing: the next tick tries again
                    logger.warning("failure log flush failed (%s)", type(exc).__name__)

        self._timer = threading.Thread(target=run, name="bastion-failure-log", daemon=True)
        self._timer.start()

    def close(self) -> None:
        """Stop the timer and write every open window."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(5.0)
            self._timer = None
        self.flush(force=True)

    def _append(self, source: str, count: int, *, aggregated: bool, window_start: float) -> None:
        details: dict[str, Any] = {
            "source": source,
            "count": count,
            "window_s": self.window_s,
            "window_start": round(window_start, 3),
        }
        if aggregated:
            details["aggregated"] = True
        self._audit.append(
            actor="unauthenticated", action=self._action, target=source, outcome="denied", details=details
        )


def clean_spools(root: Path) -> list[str]:
    """Remove spool directories left by server processes that are gone (plaintext of a killed pull)."""
    removed = []
    for entry in sorted(os.listdir(root)):
        pid_text = entry.split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)) and int(pid_text) != os.getpid():
            continue
        shutil.rmtree(root / entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _jwt_verifier(base: Vault) -> JwtVerifier | None:
    """JWTs as the gateway accepts them, where bastion.toml has ``[serve.jwt]`` (else tokens only)."""
    table = base.settings.section("serve").get("jwt")
    if not table:
        return None
    from bastion.serve.config import config_from_mapping, validate

    cfg = config_from_mapping({"jwt": table})
    validate(cfg)
    return JwtVerifier(cfg.jwt) if cfg.jwt.enabled else None


__all__ = [
    "SPOOL_DIR",
    "FailureLog",
    "QuietFailures",
    "ServerSettings",
    "ServerState",
    "TooManyRequests",
    "clean_spools",
    "settings_from_config",
]
