"""Reading and writing the seals of authorization state (the ``sealed_state`` table)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bastion.store.tables import seals


def read_seal(conn: Connection, kind: str, key: str) -> bytes | None:
    mac = conn.execute(sa.select(seals.c.mac).where(seals.c.kind == kind, seals.c.key == key)).scalar()
    return None if mac is None else bytes(mac)


def write_seal(conn: Connection, kind: str, key: str, mac: bytes) -> None:
    """Replace the seal of ``(kind, key)`` inside the caller's transaction."""
    conn.execute(sa.delete(seals).where(seals.c.kind == kind, seals.c.key == key))
    conn.execute(sa.insert(seals).values(kind=kind, key=key, mac=mac))


__all__ = ["read_seal", "write_seal"]
