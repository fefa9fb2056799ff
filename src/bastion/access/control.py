"""Identities, API tokens and the permission check (deny by default, every denial audit-logged).

Tokens are ``bst_<id>.<secret>``: ``id`` is 16 random hex characters, independent of the secret (it is shown
in listings and logs and used to find the row), ``secret`` is ``secrets.token_urlsafe(32)`` (256 bits). The
database keeps only a per-token random salt and HMAC-SHA256(salt, token), compared with
:func:`hmac.compare_digest`. A token is shown once, at creation.

Tokens made before this format (``bst_`` + 43 characters, no ``.``) keep working: their row is still found by
their first 12 characters, but since those are part of the secret they are never shown or logged again;
listings, logs and ``token revoke`` use ``legacy-`` + a hash of them instead. Re-issue them to get an
independent id (``token create``, then ``token revoke legacy-…``).

A token carries its identity's scope. Creating a token for an existing identity never changes the identity's
grants (that is ``access grant``'s job), and a token cannot be narrower than its identity either: asking for
other models or environments than the identity holds is refused.

Every identity's authorization state (name, role, disabled or not, its active grants and its active tokens'
salts and digests) is sealed with the key ring's row-sealing key (:mod:`bastion.crypto.seal`) in the same
transaction that changes it, and the seal is checked whenever an identity is loaded to act (a token is
authenticated, an identity is looked up). A database writer without the key who inserts a token row, changes
a role, widens a grant or re-enables an identity gets :class:`~bastion.errors.IntegrityError` (exit 1), never
access. Rows written without a seal (a home from before seals) are refused the same way until the owner,
having checked them with ``bastion access list``, runs ``bastion access seal --yes``. The local owner (no
token) is the passphrase holder and is not read from the database at all.

Size (over 400 lines, on purpose): the token format (:mod:`bastion.access._tokens`), scope checks
(:mod:`bastion.access._scopes`), the records (:mod:`bastion.access.identity`) and the seals
(:mod:`bastion.access._seals`) live beside it and are re-exported here; what stays is :class:`AccessControl`,
whose every change is one transaction (check the seal, write, reseal, log) kept in one place.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.access import _seals
from bastion.access._scopes import _check_role, _same_scope, _scopes, check_identity_name
from bastion.access._tokens import (
    LEGACY_PREFIX,
    TOKEN_ID_HEX,
    TOKEN_PREFIX,
    _legacy_public_id,
    _public_id,
    _row_id,
    _token_digest,
    token_id,
)
from bastion.access.identity import OWNER_ID, OWNER_NAME, Identity, Revocation, TokenInfo, allowed
from bastion.config import ENVIRONMENTS
from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceError,
)
from bastion.store.auditlog import AuditLog
from bastion.store.db import utcnow, write_transaction
from bastion.store.tables import grants, identities, tokens

if TYPE_CHECKING:
    from bastion.crypto.seal import RowSealer


class AccessControl:
    """Identity store and permission checks for one acting identity (``actor``)."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        *,
        actor: Identity | None = None,
        sealer: RowSealer | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.actor = actor
        if sealer is None:  # the home's signing keys derive it; without them nothing can be checked
            row_sealer = getattr(getattr(audit, "signer", None), "row_sealer", None)
            sealer = row_sealer() if callable(row_sealer) else None
        self.sealer = sealer

    # --- seals ----------------------------------------------------------------------------------------------

    def _need_sealer(self) -> RowSealer:
        if self.sealer is None:
            raise ConfigError(
                "authorization rows cannot be sealed or checked without the home's signing keys"
            )
        return self.sealer

    def _reseal(self, conn: Connection, identity_id: str) -> None:
        """Seal an identity's current state, inside the transaction that changed it."""
        _seals.reseal(conn, self._need_sealer(), identity_id)

    def _check_seal(self, conn: Connection, identity_id: str) -> None:
        _seals.check_seal(conn, self._need_sealer(), identity_id)

    def unsealed(self) -> list[str]:
        """Names of identities whose seal is missing or does not match (what ``access seal`` would bless)."""
        out = []
        with self.engine.connect() as conn:
            for ident_id, name in conn.execute(sa.select(identities.c.id, identities.c.name)).all():
                try:
                    self._check_seal(conn, ident_id)
                except IntegrityError:
                    out.append(name)
        return sorted(out)

    def seal_all(self) -> list[str]:
        """Seal every identity as it is now (the owner's migration step, after checking ``access list``)."""
        if self.actor is None or self.actor.id != OWNER_ID:
            raise AccessDenied("only the local owner (the passphrase holder, no token) may seal rows")
        names = self.unsealed()
        with self.engine.begin() as conn:
            for ident_id, name in conn.execute(sa.select(identities.c.id, identities.c.name)).all():
                if name in names:
                    self._reseal(conn, ident_id)
        self._log("access:seal", "-", {"identities": names})
        return names

    def cross_check_log(self, entries: Iterable[Any]) -> None:
        """Revocations the (witnessed) audit log recorded must still hold in the rows
        (:func:`bastion.access._seals.cross_check_log`: a replayed older, validly sealed state is refused)."""
        _seals.cross_check_log(self.engine, entries)

    def local_owner(self) -> Identity:
        """The local mode's acting identity: the passphrase holder is the owner (not read from the rows)."""
        with self.engine.connect() as conn:
            exists = conn.execute(sa.select(identities.c.id).where(identities.c.id == OWNER_ID)).first()
        if exists is None:
            raise NotFound("this project has no owner identity")
        return Identity(id=OWNER_ID, name=OWNER_NAME, role="admin", models=("*",), envs=ENVIRONMENTS)

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

    def _load(self, conn: Connection, row: Any, *, check: bool = True) -> Identity:
        if check:  # every identity that is about to act, or whose scope a change starts from, is checked
            self._check_seal(conn, row.id)
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
            row = _active_row(conn, name)
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
            return [self._load(conn, r, check=False) for r in rows]  # shown, granting nothing

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
        self._reseal(conn, identity_id)

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
        try:
            self._grant(name=name, role=role, models=models, envs=envs)
        except sa.exc.IntegrityError as exc:  # a concurrent create of the same name
            raise Conflict(f"identity {name!r} was created concurrently: try again") from exc
        ident = self.identity(name)
        self._log("access:grant", name, {"role": ident.role, "models": list(models), "envs": list(envs)})
        return ident

    def _grant(self, *, name: str, role: str | None, models: Sequence[str], envs: Sequence[str]) -> None:
        with self._writing() as conn:
            row = _active_row(conn, name)
            if row is None:
                _new_identity_name(conn, name)
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
                self._reseal(conn, row.id)

    def revoke(self, *, name: str, models: Sequence[str] = (), envs: Sequence[str] = ()) -> Identity | None:
        """Remove model/env scopes; with neither, disable the identity and revoke all its tokens.

        Scopes are removed by their exact text (``--model digits`` does not narrow a ``*`` grant). When none
        of the given scopes is held, nothing changes and :class:`NotFound` says what the identity holds; use
        :meth:`revoke_scopes` to learn which were removed and which were not held.
        """
        return self.revoke_scopes(name=name, models=models, envs=envs).identity

    def revoke_scopes(self, *, name: str, models: Sequence[str] = (), envs: Sequence[str] = ()) -> Revocation:
        """:meth:`revoke`, returning what was removed and what was not held (raises when nothing matched)."""
        self._require_manage()
        now = utcnow()
        removed: dict[str, list[str]] = {"model": [], "env": []}
        missing: dict[str, list[str]] = {"model": [], "env": []}
        with self._writing() as conn:
            row = _active_row(conn, name)
            if row is None:
                raise NotFound(f"no identity named {name!r}")
            if row.id == OWNER_ID and not (models or envs):
                raise InvalidInput("the local owner cannot be disabled")
            active = grants.c.revoked_at.is_(None) & (grants.c.identity_id == row.id)
            if models or envs:
                current = self._load(conn, row)
                held = {"model": current.models, "env": current.envs}
                for scope, values in (("model", models), ("env", envs)):
                    for v in dict.fromkeys(values):
                        (removed if v in held[scope] else missing)[scope].append(v)
                if not removed["model"] and not removed["env"]:
                    raise NotFound(
                        f"{name} holds none of the scopes given, nothing was removed (it holds models "
                        f"{', '.join(current.models) or '-'}; envs {', '.join(current.envs) or '-'}; "
                        "scopes are removed by their exact text)"
                    )
                for scope in ("model", "env"):
                    if removed[scope]:
                        conn.execute(
                            sa.update(grants)
                            .where(active, grants.c.scope == scope, grants.c.value.in_(removed[scope]))
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
            self._reseal(conn, row.id)
        self._log(
            "access:revoke",
            name,
            {
                "models": removed["model"],
                "envs": removed["env"],
                "not_held": {"models": missing["model"], "envs": missing["env"]},
            },
        )
        ident = None if not (models or envs) else self.identity(name)
        return Revocation(
            identity=ident,
            removed_models=tuple(removed["model"]),
            removed_envs=tuple(removed["env"]),
            not_held_models=tuple(missing["model"]),
            not_held_envs=tuple(missing["env"]),
        )

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that reads then writes, opened as a writer (the store's write lock is its first
        statement): on SQLite a deferred transaction's upgrade from reader to writer is refused at once
        ("database is locked", no busy wait) when another connection wrote meanwhile."""
        try:
            with write_transaction(self.engine) as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise ServiceError("the metadata database is busy: the change was not made, try again") from exc

    # --- tokens ---------------------------------------------------------------------------------------------

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        """A new API token for identity ``name`` (created with ``role`` if new). Returns (identity, token).

        For an existing identity the token gets exactly the identity's scope: ``models``/``envs`` may be
        omitted or must equal what it holds (widening is ``access grant``'s job; narrowing needs another
        identity), so creating a token never changes what older tokens of that identity may do.
        """
        self._require_manage()
        _check_role(role)
        row_id = secrets.token_hex(TOKEN_ID_HEX // 2)
        token = f"{TOKEN_PREFIX}{row_id}.{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        try:
            with self.engine.begin() as conn:
                row = _active_row(conn, name)
                if row is None:
                    _new_identity_name(conn, name)
                    m, e = _scopes(role, models, envs)
                    identity_id = uuid.uuid4().hex
                    self._insert_identity(
                        conn, identity_id=identity_id, name=name, role=role, models=m, envs=e
                    )
                else:
                    if row.role != role:
                        raise Conflict(f"identity {name!r} already has role {row.role}")
                    identity_id = row.id
                    current = self._load(conn, row)
                    _same_scope(name, "models", models, current.models)
                    _same_scope(name, "envs", envs, current.envs)
                    m, e = current.models, current.envs
                conn.execute(
                    sa.insert(tokens).values(
                        id=row_id,
                        identity_id=identity_id,
                        salt=salt,
                        digest=_token_digest(salt, token),
                        created_at=utcnow(),
                    )
                )
                self._reseal(conn, identity_id)
        except sa.exc.IntegrityError as exc:  # a concurrent create of the same identity name
            raise Conflict(f"identity {name!r} was created concurrently: try again") from exc
        ident = self.identity(name)
        self._log(
            "token:create", name, {"token_id": row_id, "role": role, "models": list(m), "envs": list(e)}
        )
        return ident, token

    def authenticate(self, token: str) -> Identity:
        """The identity of a token; raises AuthenticationFailed (and logs it) for anything else."""
        shown = "-"
        try:
            row_id = _row_id(token)
            if row_id is None:
                raise AuthenticationFailed("invalid API token")
            shown = _public_id(row_id)  # never a piece of the secret
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(tokens, identities.c.disabled_at)
                    .join(identities, identities.c.id == tokens.c.identity_id)
                    .where(tokens.c.id == row_id)
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
                actor="unauthenticated", action="auth", target=shown, outcome="denied", details=None
            )
            raise
        except IntegrityError:
            self.audit.append(
                actor="unauthenticated",
                action="auth",
                target=shown,
                outcome="denied",
                details={"reason": "authorization state failed its seal"},
            )
            raise

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by its public id (``legacy-…`` for tokens of the old format)."""
        self._require_manage()
        with self._writing() as conn:
            row_id = token_id
            if token_id.startswith(LEGACY_PREFIX):
                legacy = conn.execute(sa.select(tokens.c.id).where(tokens.c.revoked_at.is_(None))).scalars()
                row_id = next((r for r in legacy if _legacy_public_id(r) == token_id), "")
            owner_id = conn.execute(sa.select(tokens.c.identity_id).where(tokens.c.id == row_id)).scalar()
            result = conn.execute(
                sa.update(tokens)
                .where(tokens.c.id == row_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if not row_id or result.rowcount != 1:
                raise NotFound(f"no active token with id {token_id!r}")
            self._reseal(conn, str(owner_id))
        self._log("token:revoke", _public_id(row_id))

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
                id=_public_id(r.id),
                identity=r.name,
                role=r.role,
                created_at=(
                    r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=dt.UTC)
                ).isoformat(),
                revoked=r.revoked_at is not None,
            )
            for r in rows
        ]


def _active_row(conn: Connection, name: str) -> Any:
    """The row of the identity ``name`` unless it was revoked (None then, or when there is none)."""
    return conn.execute(
        sa.select(identities).where(identities.c.name == name, identities.c.disabled_at.is_(None))
    ).first()


def _new_identity_name(conn: Connection, name: str) -> None:
    """A valid name no identity ever had: a revoked identity's name is not reused (its audit trail and grants
    stay attributable)."""
    check_identity_name(name)
    if conn.execute(sa.select(identities.c.id).where(identities.c.name == name)).first() is not None:
        raise Conflict(f"identity {name!r} was revoked; its name cannot be reused: choose another name")


__all__ = [
    "OWNER_ID",
    "TOKEN_PREFIX",
    "AccessControl",
    "Identity",
    "Revocation",
    "TokenInfo",
    "allowed",
    "token_id",
]
