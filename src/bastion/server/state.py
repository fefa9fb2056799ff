"""What a ``bastion server`` process holds: the project opened once, and one Vault per request.

The home is opened once (the passphrase KDF, the key ring, the signing keys, the database engine, the audit
log); each request then gets a :class:`~bastion.vault.Vault` built from those shared components for the
identity its bearer token names. The Vault's own permission checks and audit entries run unchanged, so the
server writes exactly the entries local mode writes for that identity. Tokens are checked on **every**
request (no cache): a revocation takes effect on the next call.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion.access import AccessControl, Identity
from bastion.crypto.interface import WrapHolder
from bastion.errors import AuthenticationFailed, ConfigError
from bastion.serve.auth import Authenticator, JwtVerifier, looks_like_jwt
from bastion.serve.config import RateLimitConfig
from bastion.serve.ratelimit import RateLimiter
from bastion.vault import Vault, open_vault
from bastion.vault.interface import Inspector

SPOOL_DIR = "server-spool"


@dataclass(frozen=True)
class ServerSettings:
    """Limits of one server process (the rest comes from the home's bastion.toml)."""

    max_upload_bytes: int = 256 * 2**30  # one push, all files together
    max_upload_files: int = 100_000
    chunk_bytes: int = 1 << 20  # the unit both sides stream in
    per_address: str = "6000/minute"  # requests per client address, before authentication
    auth_failures: str = "60/minute"  # failed authentications per address, then refused before any lookup

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_upload_files <= 0 or self.chunk_bytes < 4096:
            raise ConfigError("server limits must be positive (chunk_bytes at least 4096)")


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
        self.settings = settings or ServerSettings()
        self.home = Path(base.settings.home)
        self._jwt = _jwt_verifier(base)
        self._tokens = base.access.authenticate  # logs each failure, like local mode
        # Failures are audit-logged one by one (as in local mode), so an address that keeps failing is
        # refused before any lookup: a flood of bad tokens can neither grow the log nor guess at speed.
        self._limits = RateLimiter(
            config=RateLimitConfig(
                per_address=self.settings.per_address, auth_failures=self.settings.auth_failures
            )
        )
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
        self.base.close()

    # --- who is calling ------------------------------------------------------------------------------------

    def authenticate(self, header: str | None, *, address: str = "-") -> Identity:
        """``Authorization`` header → identity (AuthenticationFailed otherwise). Checked on every call."""
        decision = self._limits.address(address)
        if not decision.allowed:
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
            raise

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


__all__ = ["SPOOL_DIR", "ServerSettings", "ServerState", "TooManyRequests", "clean_spools"]
