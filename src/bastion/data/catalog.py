"""The data catalog (column classifications) and the per-scope data keys, in the metadata database.

Data keys: one DEK per token scope, made with :func:`bastion.crypto.new_dek`, wrapped by the project's
:class:`~bastion.crypto.KeyProvider` (local key ring or PKCS#11) under the context
``bastion-data-key:<scope>``
and stored wrapped, so the plaintext key exists only in memory while a command runs.

Classifications are evidence for the policy gate (BST-P007), so the rows of one file digest are sealed
(kind ``classification``, :class:`~bastion.crypto.seal.RowSealer`) when written with a sealer, and
:func:`check_classification` refuses rows written or edited without the key ring (issue 11).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.crypto import KeyProvider, WrappedKey, new_dek
from bastion.crypto.interface import HeldWrap
from bastion.data.scan import ScanReport
from bastion.data.tokens import ScopeKeys
from bastion.errors import IntegrityError, NotFound, ServiceError
from bastion.store.db import Base, utcnow, write_transaction
from bastion.store.seals import read_sealed, write_seal

if TYPE_CHECKING:
    from bastion.crypto.seal import RowSealer

CLASSIFICATION_SEAL = "classification"

data_classifications = sa.Table(
    "data_classifications",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(1024), nullable=False, index=True),
    sa.Column("digest", sa.String(200), nullable=False, index=True),
    sa.Column("column_name", sa.String(512), nullable=False),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("quasi_identifier", sa.Boolean, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("entities", sa.Text, nullable=False),  # JSON: {entity: count}
    sa.Column("file_label", sa.String(16), nullable=False),
    sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("scanned_by", sa.String(200), nullable=False),
)
data_keys = sa.Table(
    "data_keys",
    Base.metadata,
    sa.Column("scope", sa.String(100), primary_key=True),
    sa.Column("wrapped", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

_READY: set[str] = set()


def ensure_data_tables(engine: Engine) -> None:
    key = f"{id(engine)}:{engine.url}"
    if key in _READY:
        return
    try:
        Base.metadata.create_all(engine, tables=[data_classifications, data_keys])
    except sa.exc.OperationalError as exc:
        raise ServiceError(f"metadata database unavailable: {exc.orig}") from exc
    _READY.add(key)


def _classification_state(conn: sa.Connection, digest: str) -> dict[str, Any]:
    rows = conn.execute(
        sa.select(data_classifications)
        .where(data_classifications.c.digest == digest)
        .order_by(data_classifications.c.id)
    ).all()
    return {
        "rows": [
            [
                int(r.id),
                r.dataset,
                r.column_name,
                r.label,
                bool(r.quasi_identifier),
                r.action,
                r.entities,
                r.file_label,
                r.scanned_by,
            ]
            for r in rows
        ]
    }


def check_classification(engine: Engine, sealer: RowSealer, digest: str) -> None:
    """Raise IntegrityError unless the classification rows of ``digest`` are exactly the sealed ones."""
    ensure_data_tables(engine)
    with engine.connect() as conn:
        state, mac = read_sealed(
            conn, CLASSIFICATION_SEAL, digest, lambda c: _classification_state(c, digest)
        )
    if mac is None:
        raise IntegrityError(
            f"the classification of {digest[:23]}… is not sealed (scanned before seals, or written without "
            "the key ring): scan the file again with 'bastion data scan'"
        )
    sealer.check(CLASSIFICATION_SEAL, digest, state, mac, what=f"the classification of {digest[:23]}…")


def record_classification(
    engine: Engine,
    report: ScanReport,
    *,
    actor: str,
    dataset: str | None = None,
    sealer: RowSealer | None = None,
) -> int:
    """Store one row per column of ``report``; returns the number of rows written. With ``sealer`` (the
    vault's), the digest's rows are resealed in the same transaction (the policy gate counts only those)."""
    ensure_data_tables(engine)
    now = utcnow()
    rows = [
        {
            "dataset": dataset or report.path,
            "digest": report.digest,
            "column_name": c.name,
            "label": c.label.value,
            "quasi_identifier": c.quasi_identifier,
            "action": c.action.value,
            "entities": json.dumps({e.entity: e.count for e in c.entities}, sort_keys=True),
            "file_label": report.label.value,
            "scanned_at": now,
            "scanned_by": actor,
        }
        for c in report.columns
    ]
    if rows:
        with write_transaction(engine) as conn:  # the store's write lock: concurrent scans reseal in turn
            conn.execute(sa.insert(data_classifications), rows)
            if sealer is not None:
                state = _classification_state(conn, report.digest)
                mac = sealer.seal(CLASSIFICATION_SEAL, report.digest, state)
                write_seal(conn, CLASSIFICATION_SEAL, report.digest, mac)
    return len(rows)


def catalog_entries(engine: Engine, *, dataset: str | None = None) -> list[dict[str, Any]]:
    """The latest classification of every column of ``dataset`` (or of every dataset)."""
    ensure_data_tables(engine)
    query = sa.select(data_classifications).order_by(data_classifications.c.id)
    if dataset is not None:
        query = query.where(data_classifications.c.dataset == dataset)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            entry = dict(row)
            entry["entities"] = json.loads(entry["entities"])
            latest[(entry["dataset"], entry["column_name"])] = entry
    return list(latest.values())


def _context(scope: str) -> str:
    return f"bastion-data-key:{scope}"


def scope_keys(
    engine: Engine, provider: KeyProvider, *, scope: str, env: str, actor: str = "system", create: bool = True
) -> ScopeKeys:
    """The transforms of token scope ``scope``, creating (and wrapping) its data key on first use."""
    ensure_data_tables(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(data_keys.c.wrapped).where(data_keys.c.scope == scope)).first()
    if row is None:
        if not create:
            raise NotFound(f"no data key for token scope {scope!r}")
        dek = new_dek()
        wrapped = provider.wrap(env=env, dek=dek, context=_context(scope))
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(data_keys).values(
                        scope=scope, wrapped=wrapped.to_json(), created_at=utcnow(), created_by=actor
                    )
                )
            return ScopeKeys(dek, scope=scope)
        except sa.exc.IntegrityError:
            with engine.connect() as conn:  # another process created the scope first: use theirs
                row = conn.execute(sa.select(data_keys.c.wrapped).where(data_keys.c.scope == scope)).first()
            if row is None:
                raise ServiceError(f"data key for scope {scope!r} vanished") from None
    dek = provider.unwrap(WrappedKey.from_json(row.wrapped), context=_context(scope))
    return ScopeKeys(dek, scope=scope)


def wrapped_scope_key(
    engine: Engine, provider: KeyProvider, *, scope: str, env: str, actor: str = "system"
) -> tuple[WrappedKey, str]:
    """The WRAPPED data key of ``scope`` (created on first use) and the context it unwraps under, for a worker
    that unwraps it through its own key provider (:mod:`bastion.compute`): the plaintext key never travels."""
    scope_keys(engine, provider, scope=scope, env=env, actor=actor)  # creates it, and checks it unwraps here
    with engine.connect() as conn:
        row = conn.execute(sa.select(data_keys.c.wrapped).where(data_keys.c.scope == scope)).first()
    if row is None:
        raise NotFound(f"no data key for token scope {scope!r}")
    return WrappedKey.from_json(row.wrapped), _context(scope)


class DataKeyHolder:
    """The wraps of the data-protection scope keys (rows of ``data_keys``), for key rotation and retire."""

    label = "data-protection scope key(s)"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def held(self) -> list[HeldWrap]:
        ensure_data_tables(self.engine)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(data_keys.c.scope, data_keys.c.wrapped).order_by(data_keys.c.scope))
            return [
                HeldWrap(key=r.scope, wrapped=WrappedKey.from_json(r.wrapped), context=_context(r.scope))
                for r in rows
            ]

    def replace(self, key: str, wrapped: WrappedKey) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(data_keys).where(data_keys.c.scope == key).values(wrapped=wrapped.to_json())
            )
        if done.rowcount != 1:
            raise NotFound(f"no data key for token scope {key!r}")


def wrap_holder(settings: Any, engine: Engine) -> DataKeyHolder:
    """Entry point ``bastion.wrap_holders: data-keys``."""
    del settings
    return DataKeyHolder(engine)


__all__ = [
    "CLASSIFICATION_SEAL",
    "DataKeyHolder",
    "catalog_entries",
    "check_classification",
    "data_classifications",
    "data_keys",
    "ensure_data_tables",
    "record_classification",
    "scope_keys",
    "wrap_holder",
    "wrapped_scope_key",
]
