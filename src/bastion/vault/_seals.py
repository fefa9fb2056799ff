"""Seals of the registry's authorization state (issue 11 item 4), on top of :mod:`bastion.crypto.seal`.

- ``pointers`` (one per artifact name): which version ``NAME`` (latest) and ``NAME@ENV`` resolve to. Resealed
  by push and promote; checked on every resolve, so deleting the newest version or its promotion
  (rolling ``NAME@prod`` back to an older version) or relabelling a wrap row's environment is refused.
- ``version`` (one per ``NAME:VERSION``): who pushed it and when, and its manifest digest (the rest of the row
  is already cross-checked against the signed manifest). Catches a ``created_by`` edit.
- ``annotations`` (one per ``NAME:VERSION``): the whole set of results attached to a version (namespaces, data
  digests, authors), since governance gates promotion on them: an inserted, edited or deleted one is refused.

All are written in the transaction that changes the rows. Rows from before seals are refused until the owner
runs ``bastion access seal --yes`` (see :func:`seal_registry`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bastion.config import ENVIRONMENTS
from bastion.crypto.seal import RowSealer
from bastion.errors import IntegrityError
from bastion.store.seals import read_seal, read_sealed, write_seal
from bastion.store.tables import artifacts, version_annotations, versions, wrapped_keys


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def current_wraps() -> Any:
    """The newest wrap row of every version (a promotion or rotation adds one): its current environment."""
    return (
        sa.select(wrapped_keys.c.version_id, sa.func.max(wrapped_keys.c.id).label("wid"))
        .group_by(wrapped_keys.c.version_id)
        .subquery()
    )


def pointer_state(conn: Connection, name: str) -> dict[str, Any]:
    """``{"latest": N, "dev": N, ...}`` computed from the rows (an environment with no version is absent)."""
    latest = current_wraps()
    rows = conn.execute(
        sa.select(versions.c.version, wrapped_keys.c.env)
        .join(artifacts, artifacts.c.id == versions.c.artifact_id)
        .join(latest, latest.c.version_id == versions.c.id)
        .join(wrapped_keys, wrapped_keys.c.id == latest.c.wid)
        .where(artifacts.c.name == name)
    ).all()
    state: dict[str, Any] = {}
    for version, env in rows:
        state["latest"] = max(int(version), state.get("latest", 0))
        state[env] = max(int(version), state.get(env, 0))
    return state


def version_state(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": int(row.version),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "manifest_digest": row.manifest_digest,
    }


def annotation_state(conn: Connection, version_id: int) -> dict[str, Any]:
    rows = conn.execute(
        sa.select(version_annotations).where(version_annotations.c.version_id == version_id)
    ).all()
    return {
        "annotations": sorted(
            [
                int(r.id),
                r.namespace,
                hashlib.sha256(r.data_json.encode("utf-8")).hexdigest(),
                r.created_by,
                _iso(r.created_at),
            ]
            for r in rows
        )
    }


def reseal_pointers(conn: Connection, sealer: RowSealer, name: str) -> None:
    write_seal(conn, "pointers", name, sealer.seal("pointers", name, pointer_state(conn, name)))


def check_pointers(conn: Connection, sealer: RowSealer, name: str) -> None:
    state, mac = read_sealed(conn, "pointers", name, lambda c: pointer_state(c, name))
    if not state and mac is None:
        return  # reserved, nothing committed yet: nothing to grant
    sealer.check(
        "pointers",
        name,
        state,
        mac,
        what=f"{name}'s version pointers (latest and per environment)",
    )


def reseal_version(conn: Connection, sealer: RowSealer, row: Any) -> None:
    key = f"{row.name}:{int(row.version)}"
    write_seal(conn, "version", key, sealer.seal("version", key, version_state(row)))
    write_seal(conn, "annotations", key, sealer.seal("annotations", key, annotation_state(conn, row.id)))


def check_version(conn: Connection, sealer: RowSealer, row: Any) -> None:
    key = f"{row.name}:{int(row.version)}"
    sealer.check("version", key, version_state(row), read_seal(conn, "version", key), what=f"{key}'s row")
    notes, mac = read_sealed(conn, "annotations", key, lambda c: annotation_state(c, row.id))
    sealer.check("annotations", key, notes, mac, what=f"{key}'s annotations")


def _version_rows(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                versions.c.id,
                versions.c.version,
                versions.c.created_by,
                versions.c.created_at,
                versions.c.manifest_digest,
                artifacts.c.name,
            ).join(artifacts, artifacts.c.id == versions.c.artifact_id)
        )
    )


def unsealed_registry(conn: Connection, sealer: RowSealer) -> list[str]:
    """What fails its seal: artifact names (pointers) and ``NAME:VERSION`` (row or annotations)."""
    out: list[str] = []
    for name in conn.execute(sa.select(artifacts.c.name)).scalars():
        try:
            check_pointers(conn, sealer, name)
        except IntegrityError:  # listed for the owner to review
            out.append(name)
    for row in _version_rows(conn):
        try:
            check_version(conn, sealer, row)
        except IntegrityError:
            out.append(f"{row.name}:{int(row.version)}")
    return sorted(out)


def seal_registry(conn: Connection, sealer: RowSealer) -> None:
    """Seal every artifact's pointers and every version as they are now (the owner's migration step)."""
    for name in conn.execute(sa.select(artifacts.c.name)).scalars():
        reseal_pointers(conn, sealer, name)
    for row in _version_rows(conn):
        reseal_version(conn, sealer, row)


def envs_from_log(entries: Any) -> dict[tuple[str, int], str]:
    """The environment of every version, replayed from the audit log's push and promote entries."""
    env_of: dict[tuple[str, int], str] = {}
    for e in entries:
        if e.outcome != "ok" or e.action not in ("registry:push", "registry:promote"):
            continue
        name, sep, ver = e.target.rpartition(":")
        if not sep or not ver.isdigit():
            continue  # e.g. an overridden finding, logged against the name only
        env = e.details.get("env") if e.action == "registry:push" else e.details.get("to")
        if isinstance(env, str) and env in ENVIRONMENTS:
            env_of[(name, int(ver))] = env
    return env_of


def cross_check_log(conn: Connection, entries: Any) -> None:
    """Every version the (witnessed) audit log recorded must still exist, in at least the logged environment.

    Catches what a seal alone cannot: a database writer replaying an older, validly sealed state (rows and
    seal together), e.g. undoing a push or a promotion. A version or promotion the database has but the log
    lacks is not an error here (a command killed between its commit and its log entry); seals cover it.
    """
    latest = current_wraps()
    stored = {
        (name, int(version)): env
        for name, version, env in conn.execute(
            sa.select(artifacts.c.name, versions.c.version, wrapped_keys.c.env)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .join(latest, latest.c.version_id == versions.c.id)
            .join(wrapped_keys, wrapped_keys.c.id == latest.c.wid)
        )
    }
    for (name, version), env in sorted(envs_from_log(entries).items()):
        have = stored.get((name, version))
        if have is None:
            raise IntegrityError(
                f"{name}:{version} is in the audit log but gone from the database (rollback)"
            )
        if have not in ENVIRONMENTS or ENVIRONMENTS.index(have) < ENVIRONMENTS.index(env):
            raise IntegrityError(
                f"{name}:{version} was promoted to {env} (audit log) "
                f"but the database has it in {have} (rollback)"
            )


__all__ = [
    "check_pointers",
    "check_version",
    "cross_check_log",
    "current_wraps",
    "envs_from_log",
    "reseal_pointers",
    "reseal_version",
    "seal_registry",
    "unsealed_registry",
]
