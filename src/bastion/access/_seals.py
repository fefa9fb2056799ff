"""Seals of each identity's authorization state (issue 11), on top of :mod:`bastion.crypto.seal`, and the
replay of the audit log that catches an older, validly sealed state put back (:mod:`bastion.access.control`
explains both)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.access._tokens import _public_id
from bastion.errors import IntegrityError
from bastion.store.seals import read_sealed, write_seal
from bastion.store.tables import grants, identities, tokens

if TYPE_CHECKING:
    from bastion.crypto.seal import RowSealer

SEAL_KIND = "identity"


def identity_state(conn: Connection, identity_id: str) -> dict[str, Any] | None:
    """The sealed state of an identity, read from its rows (None when there is no such identity)."""
    row = conn.execute(sa.select(identities).where(identities.c.id == identity_id)).first()
    if row is None:
        return None
    scopes = conn.execute(
        sa.select(grants.c.id, grants.c.scope, grants.c.value).where(
            grants.c.identity_id == identity_id, grants.c.revoked_at.is_(None)
        )
    ).all()
    toks = conn.execute(
        sa.select(tokens.c.id, tokens.c.salt, tokens.c.digest).where(
            tokens.c.identity_id == identity_id, tokens.c.revoked_at.is_(None)
        )
    ).all()
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "disabled": row.disabled_at is not None,
        "grants": sorted([int(g.id), g.scope, g.value] for g in scopes),
        "tokens": sorted([t.id, bytes(t.salt).hex(), bytes(t.digest).hex()] for t in toks),
    }


def reseal(conn: Connection, sealer: RowSealer, identity_id: str) -> None:
    """Seal an identity's current state, inside the transaction that changed it."""
    state = identity_state(conn, identity_id)
    if state is not None:
        write_seal(conn, SEAL_KIND, identity_id, sealer.seal(SEAL_KIND, identity_id, state))


def check_seal(conn: Connection, sealer: RowSealer, identity_id: str) -> None:
    """IntegrityError unless the identity's rows match their seal."""
    state, mac = read_sealed(conn, SEAL_KIND, identity_id, lambda c: identity_state(c, identity_id))
    if state is None:
        raise IntegrityError("an authorization row names an identity that does not exist")
    sealer.check(
        SEAL_KIND,
        identity_id,
        state,
        mac,
        what=f"identity {state['name']!r}'s authorization state",
    )


def cross_check_log(engine: Engine, entries: Iterable[Any]) -> None:
    """Revocations the (witnessed) audit log recorded must still hold in the rows.

    A database writer who replays an identity's older, validly sealed state (rows and seal together) to
    undo ``access revoke NAME``, ``access revoke NAME --model/--env`` or ``token revoke ID``, or to
    restore an older role, passes the seal check; this replay of the log refuses it (issue 11 F3).
    """
    disabled: set[str] = set()
    revoked: set[str] = set()
    scopes: dict[tuple[str, str, str], bool] = {}  # (name, scope, value) -> its last logged event granted it
    roles: dict[str, str] = {}  # name -> the role its last grant or token creation logged
    for e in entries:
        if e.outcome != "ok":
            continue
        details = e.details or {}
        if e.action == "token:revoke":
            revoked.add(e.target)
        elif e.action in ("access:grant", "token:create", "access:revoke"):
            granted = e.action != "access:revoke"
            held = [("model", str(v)) for v in details.get("models") or ()]
            held += [("env", str(v)) for v in details.get("envs") or ()]
            if not granted and not held:  # a whole-identity revoke: every scope it held
                disabled.add(e.target)
                held = [(s, v) for (n, s, v) in scopes if n == e.target]
            for scope, value in held:
                scopes[(e.target, scope, value)] = granted
            if granted and isinstance(details.get("role"), str):
                roles[e.target] = details["role"]
    with engine.connect() as conn:
        active = conn.execute(
            sa.select(identities.c.id, identities.c.name, identities.c.role).where(
                identities.c.disabled_at.is_(None)
            )
        ).all()
        active_names = {r.name for r in active}
        active_tokens = {
            _public_id(r)
            for r in conn.execute(sa.select(tokens.c.id).where(tokens.c.revoked_at.is_(None))).scalars()
        }
        held_now = {
            (r.name, r.scope, r.value)
            for r in conn.execute(
                sa.select(identities.c.name, grants.c.scope, grants.c.value)
                .join(identities, identities.c.id == grants.c.identity_id)
                .where(grants.c.revoked_at.is_(None), identities.c.disabled_at.is_(None))
            )
        }
    undone = sorted(disabled & active_names) + sorted(revoked & active_tokens)
    undone += sorted(f"{n} {s} {v}" for (n, s, v), g in scopes.items() if not g and (n, s, v) in held_now)
    undone += sorted(f"{r.name} role {r.role}" for r in active if roles.get(r.name, r.role) != r.role)
    if undone:
        raise IntegrityError(
            f"revocations in the audit log were undone in the database: {', '.join(undone)} (rollback)"
        )
