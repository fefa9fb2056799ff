"""Identities, API tokens and the permission check (deny by default, every denial audit-logged).

Tokens are ``bst_`` + ``secrets.token_urlsafe(32)`` (256 bits). The first 12 characters after the prefix are
the token id, used to find the row; the database keeps only a per-token random salt and
HMAC-SHA256(salt, token), compared with :func:`hmac.compare_digest`. A token is shown once, at creation.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.access.roles import EXPLICIT_MODEL_ROLES, PERMISSIONS, ROLE_ENVS, ROLE_PERMISSIONS, ROLES
from bastion.config import ENVIRONMENTS
from bastion.errors import AccessDenied, AuthenticationFailed, Conflict, InvalidInput, NotFound
from bastion.store.auditlog import AuditLog
from bastion.store.db import utcnow
from bastion.store.tables import grants, identities, tokens

TOKEN_PREFIX = "bst_"  # noqa: S105 - a public prefix, not a secret
TOKEN_ID_LEN = 12
OWNER_ID = "owner"
OWNER_NAME = "owner"


@dataclass(frozen=True)
class Identity:
    """Who is acting: a role plus the model globs and environments granted to it."""

    id: str
    name: str
    role: str
    models: tuple[str, ...] = ("*",)
    envs: tuple[str, ...] = ENVIRONMENTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "models": list(self.models),
            "envs": list(self.envs),
        }


@dataclass(frozen=True)
class TokenInfo:
    id: str
    identity: str
    role: str
    created_at: str
    revoked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identity": self.identity,
            "role": self.role,
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


def allowed(identity: Identity, permission: str, *, model: str | None = None, env: str | None = None) -> bool:
    """The pure decision, without logging: role grants it, env and model are within scope."""
    if permission not in PERMISSIONS or identity.role not in ROLES:
        return False
    if permission not in ROLE_PERMISSIONS[identity.role]:
        return False
    if env is not None and (env not in ROLE_ENVS[identity.role] or env not in identity.envs):
        return False
    return model is None or any(fnmatch.fnmatchcase(model, glob) for glob in identity.models)


def _token_digest(salt: bytes, token: str) -> bytes:
    return hmac.new(salt, token.encode("utf-8"), hashlib.sha256).digest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r} (one of {', '.join(ROLES)})")


def _scopes(role: str, models: Iterable[str], envs: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    models = tuple(dict.fromkeys(models))
    envs = tuple(dict.fromkeys(envs))
    for m in models:
        if not m or len(m) > 200:
            raise InvalidInput("a model scope must be a non-empty glob of at most 200 characters")
    for e in envs:
        if e not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {e!r} (one of {', '.join(ENVIRONMENTS)})")
        if e not in ROLE_ENVS[role]:
            raise InvalidInput(f"role {role} cannot be granted environment {e}")
    if not models:
        if role in EXPLICIT_MODEL_ROLES:
            raise InvalidInput(f"role {role} needs at least one --model")
        models = ("*",)
    return models, envs or ROLE_ENVS[role]


class AccessControl:
    """Identity store and permission checks for one acting identity (``actor``)."""

    def __init__(self, engine: Engine, audit: AuditLog, *, actor: Identity | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.actor = actor

    # --- the check ------------------------------------------------------------------------------------------

    def check(
        self, identity: Identity, permission: str, *, model: str | None = None, env: str | None = None
    ) -> None:
        """Raise AccessDenied (and log the denial) unless ``identity`` may do ``permission``."""
        if allowed(identity, permission, model=model, env=env):
            return
        self.audit.append(
            actor=identity.name,
            action=permission,
            target=model or "-",
            outcome="denied",
            details={"role": identity.role, "env": env},
        )
        where = "".join([f" on {model}" if model else "", f" in {env}" if env else ""])
        raise AccessDenied(f"{identity.name} ({identity.role}) may not {permission}{where}")

    def _require_manage(self) -> None:
        if self.actor is not None:
            self.check(self.actor, "access:manage")

    def _log(self, action: str, target: str, details: dict[str, Any] | None = None) -> None:
        actor = self.actor.name if self.actor else "system"
        self.audit.append(actor=actor, action=action, target=target, outcome="ok", details=details)

    # --- identities -----------------------------------------------------------------------------------------

    def _load(self, conn: Connection, row: Any) -> Identity:
        scopes = conn.execute(
            sa.select(grants.c.scope, grants.c.value)
            .where(grants.c.identity_id == row.id, grants.c.revoked_at.is_(None))
            .order_by(grants.c.id)
        ).all()
        models = tuple(dict.fromkeys(v for s, v in scopes if s == "model"))
        envs = tuple(dict.fromkeys(v for s, v in scopes if s == "env"))
        return Identity(id=row.id, name=row.name, role=row.role, models=models, envs=envs)

    def identity(self, name: str) -> Identity:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(identities).where(identities.c.name == name, identities.c.disabled_at.is_(None))
            ).first()
            if row is None:
                raise NotFound(f"no identity named {name!r}")
            return self._load(conn, row)

    def identity_by_id(self, identity_id: str) -> Identity:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(identities).where(
                    identities.c.id == identity_id, identities.c.disabled_at.is_(None)
                )
            ).first()
            if row is None:
                raise NotFound(f"no identity with id {identity_id!r}")
            return self._load(conn, row)

    def list_identities(self) -> list[Identity]:
        self._require_manage()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(identities).where(identities.c.disabled_at.is_(None)).order_by(identities.c.name)
            ).all()
            return [self._load(conn, r) for r in rows]

    def _insert_identity(
        self,
        conn: Connection,
        *,
        identity_id: str,
        name: str,
        role: str,
        models: Sequence[str],
        envs: Sequence[str],
    ) -> None:
        now = utcnow()
        conn.execute(sa.insert(identities).values(id=identity_id, name=name, role=role, created_at=now))
        self._insert_grants(conn, identity_id, models, envs)

    def _insert_grants(
        self, conn: Connection, identity_id: str, models: Sequence[str], envs: Sequence[str]
    ) -> None:
        now = utcnow()
        rows = [{"scope": "model", "value": m} for m in models] + [{"scope": "env", "value": e} for e in envs]
        for r in rows:
            conn.execute(sa.insert(grants).values(identity_id=identity_id, created_at=now, **r))

    def create_owner(self) -> Identity:
        """The local owner (admin on everything), created once by ``bastion init``."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(identities.c.id).where(identities.c.id == OWNER_ID)).first() is None:
                self._insert_identity(
                    conn,
                    identity_id=OWNER_ID,
                    name=OWNER_NAME,
                    role="admin",
                    models=("*",),
                    envs=ENVIRONMENTS,
                )
        return self.identity_by_id(OWNER_ID)

    def grant(
        self, *, name: str, role: str | None = None, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> Identity:
        """Create identity ``name`` (with ``role``) or widen an existing one's model/env scopes."""
        self._require_manage()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(identities).where(identities.c.name == name, identities.c.disabled_at.is_(None))
            ).first()
            if row is None:
                if role is None:
                    raise NotFound(f"no identity named {name!r} (give --role to create it)")
                _check_role(role)
                m, e = _scopes(role, models, envs)
                self._insert_identity(
                    conn, identity_id=uuid.uuid4().hex, name=name, role=role, models=m, envs=e
                )
            else:
                if role is not None and role != row.role:
                    raise Conflict(f"identity {name!r} already has role {row.role}; revoke it first")
                current = self._load(conn, row)
                new_models = [m for m in dict.fromkeys(models) if m not in current.models]
                new_envs = [e for e in dict.fromkeys(envs) if e not in current.envs]
                _scopes(row.role, new_models or ["*"], new_envs)
                self._insert_grants(conn, row.id, new_models, new_envs)
        ident = self.identity(name)
        self._log("access:grant", name, {"role": ident.role, "models": list(models), "envs": list(envs)})
        return ident

    def revoke(self, *, name: str, models: Sequence[str] = (), envs: Sequence[str] = ()) -> Identity | None:
        """Remove model/env scopes; with neither, disable the identity and revoke all its tokens."""
        self._require_manage()
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(identities).where(identities.c.name == name, identities.c.disabled_at.is_(None))
            ).first()
            if row is None:
                raise NotFound(f"no identity named {name!r}")
            if row.id == OWNER_ID and not (models or envs):
                raise InvalidInput("the local owner cannot be disabled")
            active = grants.c.revoked_at.is_(None) & (grants.c.identity_id == row.id)
            if models or envs:
                for scope, values in (("model", models), ("env", envs)):
                    if values:
                        conn.execute(
                            sa.update(grants)
                            .where(active, grants.c.scope == scope, grants.c.value.in_(list(values)))
                            .values(revoked_at=now)
                        )
            else:
                conn.execute(sa.update(grants).where(active).values(revoked_at=now))
                conn.execute(
                    sa.update(tokens)
                    .where(tokens.c.identity_id == row.id, tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                conn.execute(sa.update(identities).where(identities.c.id == row.id).values(disabled_at=now))
        self._log("access:revoke", name, {"models": list(models), "envs": list(envs)})
        return None if not (models or envs) else self.identity(name)

    # --- tokens ---------------------------------------------------------------------------------------------

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        """A new API token for identity ``name`` (created with ``role`` if new). Returns (identity, token)."""
        self._require_manage()
        _check_role(role)
        m, e = _scopes(role, models, envs)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + TOKEN_ID_LEN]
        salt = secrets.token_bytes(16)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(identities).where(identities.c.name == name, identities.c.disabled_at.is_(None))
            ).first()
            if row is None:
                identity_id = uuid.uuid4().hex
                self._insert_identity(conn, identity_id=identity_id, name=name, role=role, models=m, envs=e)
            else:
                if row.role != role:
                    raise Conflict(f"identity {name!r} already has role {row.role}")
                identity_id = row.id
                current = self._load(conn, row)
                self._insert_grants(
                    conn,
                    identity_id,
                    [x for x in dict.fromkeys(models) if x not in current.models],
                    [x for x in dict.fromkeys(envs) if x not in current.envs],
                )
            conn.execute(
                sa.insert(tokens).values(
                    id=token_id,
                    identity_id=identity_id,
                    salt=salt,
                    digest=_token_digest(salt, token),
                    created_at=utcnow(),
                )
            )
        ident = self.identity(name)
        self._log(
            "token:create", name, {"token_id": token_id, "role": role, "models": list(m), "envs": list(e)}
        )
        return ident, token

    def authenticate(self, token: str) -> Identity:
        """The identity of a token; raises AuthenticationFailed (and logs it) for anything else."""
        token_id = "-"  # noqa: S105 - a placeholder id, not a secret
        try:
            if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
                raise AuthenticationFailed("invalid API token")
            token_id = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + TOKEN_ID_LEN]
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(tokens, identities.c.disabled_at)
                    .join(identities, identities.c.id == tokens.c.identity_id)
                    .where(tokens.c.id == token_id)
                ).first()
                # Always compute one HMAC so a missing id and a wrong secret take comparable time.
                salt = row.salt if row is not None else b"\x00" * 16
                expected = row.digest if row is not None else b"\x00" * 32
                ok = hmac.compare_digest(_token_digest(salt, token), expected)
                if row is None or not ok or row.revoked_at is not None or row.disabled_at is not None:
                    raise AuthenticationFailed("invalid API token")
                ident_row = conn.execute(
                    sa.select(identities).where(identities.c.id == row.identity_id)
                ).one()
                return self._load(conn, ident_row)
        except AuthenticationFailed:
            self.audit.append(
                actor="unauthenticated", action="auth", target=token_id, outcome="denied", details=None
            )
            raise

    def revoke_token(self, token_id: str) -> None:
        self._require_manage()
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if result.rowcount != 1:
                raise NotFound(f"no active token with id {token_id!r}")
        self._log("token:revoke", token_id)

    def list_tokens(self) -> list[TokenInfo]:
        self._require_manage()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    tokens.c.id,
                    tokens.c.created_at,
                    tokens.c.revoked_at,
                    identities.c.name,
                    identities.c.role,
                )
                .join(identities, identities.c.id == tokens.c.identity_id)
                .order_by(tokens.c.created_at)
            ).all()
        return [
            TokenInfo(
                id=r.id,
                identity=r.name,
                role=r.role,
                created_at=(
                    r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=dt.UTC)
                ).isoformat(),
                revoked=r.revoked_at is not None,
            )
            for r in rows
        ]


__all__ = ["OWNER_ID", "TOKEN_PREFIX", "AccessControl", "Identity", "TokenInfo", "allowed"]
