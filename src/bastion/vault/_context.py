"""What every vault service shares: the opened project (engine, key provider, blobs, log, signer), the caller.

One :class:`VaultContext` per opened vault; the services (:mod:`bastion.vault.artifacts`,
:mod:`bastion.vault.key_admin`, :mod:`bastion.vault.log_view`, :mod:`bastion.vault.tokens`) hold it and never
copy its parts, so the :class:`~bastion.vault.registry.Vault` facade and the services always act for the same
identity. ``check`` is the permission check (deny by default), ``log`` the one audit-log entry per action.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy.engine import Engine

from bastion.access import AccessControl, Identity
from bastion.config import Settings
from bastion.crypto.interface import KeyProvider, WrapHolder
from bastion.crypto.seal import RowSealer
from bastion.errors import AccessDenied, BastionError, DependencyMissing
from bastion.store.auditlog import AuditLog
from bastion.store.blobs import BlobStore
from bastion.vault.interface import Inspector

logger = logging.getLogger(__name__)

INSPECTOR_GROUP = "bastion.inspectors"
WRAP_HOLDER_GROUP = "bastion.wrap_holders"


def load_inspectors() -> list[Inspector]:
    """The installed inspectors (entry-point group ``bastion.inspectors``); a broken one is skipped."""
    found: list[Inspector] = []
    for ep in entry_points(group=INSPECTOR_GROUP):
        try:
            found.append(ep.load())
        except (ImportError, AttributeError) as exc:
            logger.warning("artifact inspector %s could not be loaded: %s", ep.name, exc)
    return found


def load_wrap_holders(settings: Settings, engine: Engine) -> list[WrapHolder]:
    """Every installed holder of KEK-wrapped secrets (entry-point group ``bastion.wrap_holders``).

    A holder that cannot be loaded is an error, not a warning: rotating or retiring keys without it would
    strand its secrets.
    """
    found: list[WrapHolder] = []
    for ep in entry_points(group=WRAP_HOLDER_GROUP):
        try:
            found.append(ep.load()(settings, engine))
        except (ImportError, AttributeError) as exc:
            raise DependencyMissing(f"key holder {ep.name} could not be loaded ({exc})") from exc
    return found


@dataclass(eq=False)
class VaultContext:
    """An opened project acting for one identity (shared, by reference, by every service)."""

    settings: Settings
    engine: Engine
    keys: KeyProvider
    blobs: BlobStore
    audit: AuditLog
    access: AccessControl
    identity: Identity
    signer: Any
    inspectors: list[Inspector] | None = None
    holders: list[WrapHolder] | None = field(default=None)

    @functools.cached_property
    def sealer(self) -> RowSealer:
        """The row sealer (HMAC key derived from the home's signing key)."""
        return self.signer.row_sealer()  # type: ignore[no-any-return]

    def wrap_holders(self) -> list[WrapHolder]:
        """The holders of other KEK-wrapped secrets (given, else the installed entry points)."""
        if self.holders is None:
            self.holders = load_wrap_holders(self.settings, self.engine)
        return list(self.holders)

    def inspectors_or_installed(self) -> Sequence[Inspector]:
        return load_inspectors() if self.inspectors is None else self.inspectors

    def check(self, permission: str, *, model: str | None = None, env: str | None = None) -> None:
        """Raise AccessDenied (and log the denial) unless the identity holds ``permission`` here."""
        self.access.check(self.identity, permission, model=model, env=env)

    def check_found(self, permission: str, *, model: str, env: str) -> None:
        """:meth:`check` for the environment a version was *found* in (not one the caller asked for): a
        caller who may not see that environment is refused without being told it (the log records it)."""
        try:
            self.check(permission, model=model, env=env)
        except AccessDenied:
            from bastion.access.roles import ROLE_ENVS

            if env in self.identity.envs and env in ROLE_ENVS.get(self.identity.role, ()):
                raise
            who = f"{self.identity.name} ({self.identity.role})"
            raise AccessDenied(
                f"{who} may not {permission} on {model} (not in an environment granted to it)"
            ) from None

    def log(self, action: str, target: str, outcome: str = "ok", **details: Any) -> None:
        self.audit.append(
            actor=self.identity.name, action=action, target=target, outcome=outcome, details=details
        )

    @contextmanager
    def logged_failure(self, action: str, target: str) -> Iterator[None]:
        """Audit-log a failure (other than a denial, which the check logged) and re-raise it."""
        try:
            yield
        except AccessDenied:
            raise
        except BastionError as exc:
            outcome = "denied" if exc.exit_code == 1 else "error"
            with suppress(BastionError):
                self.log(action, target, outcome, error=type(exc).__name__)
            raise

    def close(self) -> None:
        self.audit.close()
        self.engine.dispose()


__all__ = ["INSPECTOR_GROUP", "WRAP_HOLDER_GROUP", "VaultContext", "load_inspectors", "load_wrap_holders"]
