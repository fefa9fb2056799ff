"""Reading and writing the seals of authorization state (the ``sealed_state`` table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bastion.errors import ServiceError
from bastion.store.tables import seals

T = TypeVar("T")

#: How many times :func:`read_sealed` re-reads while writers keep committing before it gives up.
READ_ATTEMPTS = 20


def read_seal(conn: Connection, kind: str, key: str) -> bytes | None:
    mac = conn.execute(sa.select(seals.c.mac).where(seals.c.kind == kind, seals.c.key == key)).scalar()
    return None if mac is None else bytes(mac)


def read_sealed(
    conn: Connection, kind: str, key: str, state_of: Callable[[Connection], T]
) -> tuple[T, bytes | None]:
    """``(state, seal)`` as one writer left them, for a check outside a writing transaction.

    Under READ COMMITTED (PostgreSQL's default, and SQLite without an explicit transaction) every statement
    sees the newest commit, so a push committing between the reads of the rows and of their seal pairs the
    old state with the new seal, and an honest registry looks tampered. Writers change the rows and the seal
    in one transaction, so the seal read before and after the state is unchanged only if no such commit
    fell in between: re-read until it is.
    """
    for _ in range(READ_ATTEMPTS):
        before = read_seal(conn, kind, key)
        state = state_of(conn)
        after = read_seal(conn, kind, key)
        if before == after:
            return state, after
    raise ServiceError(f"{kind} {key!r} kept changing while being read; try again")


def write_seal(conn: Connection, kind: str, key: str, mac: bytes) -> None:
    """Replace the seal of ``(kind, key)`` inside the caller's transaction."""
    conn.execute(sa.delete(seals).where(seals.c.kind == kind, seals.c.key == key))
    conn.execute(sa.insert(seals).values(kind=kind, key=key, mac=mac))


__all__ = ["READ_ATTEMPTS", "read_seal", "read_sealed", "write_seal"]
