"""The privacy ledger's rows: tables, the records read from them, name checks and the legacy-key migration.

Split from :mod:`bastion.privacy.ledger` (which re-exports the public names) so that the ledger module holds
the reserve/settle/charge logic; :mod:`bastion.privacy._ledger_seals` authenticates these rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.crypto.seal import RowSealer
from bastion.errors import InvalidInput
from bastion.privacy import _ledger_seals
from bastion.store.db import Base, write_transaction

_TS = sa.DateTime(timezone=True)
TOLERANCE = 1e-9
KINDS: tuple[str, ...] = ("train", "query", "audit")
MAX_DATASET_NAME = 255

budgets_table = sa.Table(
    "privacy_budgets",
    Base.metadata,
    sa.Column("dataset", sa.String(MAX_DATASET_NAME), primary_key=True),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

labels_table = sa.Table(
    "privacy_dataset_labels",
    Base.metadata,
    sa.Column("dataset", sa.String(MAX_DATASET_NAME), primary_key=True),
    sa.Column("label", sa.String(MAX_DATASET_NAME), nullable=False),
)

spends_table = sa.Table(
    "privacy_spends",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("spend_id", sa.String(32), nullable=False, index=True),
    sa.Column("dataset", sa.String(MAX_DATASET_NAME), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # reserved | spent
    sa.Column("epsilon_planned", sa.Float, nullable=False),
    sa.Column("delta_planned", sa.Float, nullable=False),
    sa.Column("epsilon", sa.Float, nullable=True),
    sa.Column("delta", sa.Float, nullable=True),
    sa.Column("details_json", sa.Text, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("settled_at", _TS, nullable=True),
)


@dataclass(frozen=True)
class Spend:
    """One dataset's share of a spend. ``epsilon``/``delta`` are the settled values (planned until then)."""

    spend_id: str
    dataset: str
    kind: str
    status: str
    epsilon: float
    delta: float
    epsilon_planned: float
    delta_planned: float
    actor: str
    created_at: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetStatus:
    """A dataset's budget and what has been spent (settled plus still-reserved) against it."""

    dataset: str
    epsilon_budget: float
    delta_budget: float
    epsilon_spent: float
    delta_spent: float
    spends: tuple[Spend, ...] = ()
    label: str | None = None

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_budget - self.epsilon_spent)

    def epsilon_summary(self) -> dict[str, float]:
        """Budget, spent and remaining ε, as the CLI's JSON ``budget`` object."""
        return {
            "epsilon_budget": self.epsilon_budget,
            "epsilon_spent": self.epsilon_spent,
            "epsilon_remaining": self.epsilon_remaining,
        }

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_budget - self.delta_spent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "label": self.label,
            "epsilon_budget": self.epsilon_budget,
            "delta_budget": self.delta_budget,
            "epsilon_spent": self.epsilon_spent,
            "delta_spent": self.delta_spent,
            "epsilon_remaining": self.epsilon_remaining,
            "delta_remaining": self.delta_remaining,
            "spends": [
                {
                    "spend_id": s.spend_id,
                    "kind": s.kind,
                    "status": s.status,
                    "epsilon": s.epsilon,
                    "delta": s.delta,
                    "epsilon_planned": s.epsilon_planned,
                    "actor": s.actor,
                    "created_at": s.created_at,
                    "details": dict(s.details),
                }
                for s in self.spends
            ],
        }


@dataclass(frozen=True)
class Reservation:
    """A planned spend, charged to every dataset in ``datasets`` until :meth:`PrivacyLedger.settle`."""

    spend_id: str
    datasets: tuple[str, ...]
    kind: str
    epsilon: float
    delta: float


def _check_dataset(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_DATASET_NAME:
        raise InvalidInput(f"dataset name must be 1–{MAX_DATASET_NAME} characters")
    return name.strip()


def _check_datasets(datasets: str | Sequence[str]) -> tuple[str, ...]:
    names = (datasets,) if isinstance(datasets, str) else tuple(datasets)
    if not names:
        raise InvalidInput("a spend must name at least one dataset")
    return tuple(dict.fromkeys(_check_dataset(n) for n in names))


def _describe(name: str, label: str | None) -> str:
    if label and label != name:
        short = name if len(name) <= 23 else name[:23] + "…"
        return f"{label!r} ({short})"
    return repr(name)


def _label(conn: Connection, name: str) -> str | None:
    value = conn.execute(sa.select(labels_table.c.label).where(labels_table.c.dataset == name)).scalar()
    return None if value is None else str(value)


def _budget_row(conn: Connection, name: str) -> Any:
    return conn.execute(sa.select(budgets_table).where(budgets_table.c.dataset == name)).first()


def _spends(conn: Connection, name: str) -> list[Spend]:
    rows = conn.execute(
        sa.select(spends_table).where(spends_table.c.dataset == name).order_by(spends_table.c.id)
    ).all()
    out = []
    for r in rows:
        settled = r.status == "spent"
        out.append(
            Spend(
                spend_id=r.spend_id,
                dataset=r.dataset,
                kind=r.kind,
                status=r.status,
                epsilon=float(r.epsilon if settled else r.epsilon_planned),
                delta=float(r.delta if settled else r.delta_planned),
                epsilon_planned=float(r.epsilon_planned),
                delta_planned=float(r.delta_planned),
                actor=r.actor,
                created_at=r.created_at.isoformat()
                if hasattr(r.created_at, "isoformat")
                else str(r.created_at),
                details=json.loads(r.details_json),
            )
        )
    return out


def _totals(spends: Sequence[Spend]) -> tuple[float, float]:
    return math.fsum(s.epsilon for s in spends), math.fsum(s.delta for s in spends)


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(dict(details), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"spend details must be JSON-serialisable: {exc}") from exc


def migrate_legacy_keys(
    engine: Engine, sealer: RowSealer | None, log: Callable[[str, str, str, Mapping[str, Any]], None]
) -> list[str]:
    """Move budgets and spends that earlier versions keyed by a built-in's *name* to its digest key.

    Without this, re-setting ``digits``' budget after an upgrade would start from zero spent (a reset by
    upgrade). Returns the names moved (each logged through ``log`` as ``privacy.budget.migrate``)."""
    from bastion.models.data import DATASETS, builtin_digest

    with engine.connect() as conn:
        legacy = set(
            conn.execute(sa.select(budgets_table.c.dataset).where(budgets_table.c.dataset.in_(DATASETS)))
            .scalars()
            .all()
        ) | set(
            conn.execute(sa.select(spends_table.c.dataset).where(spends_table.c.dataset.in_(DATASETS)))
            .scalars()
            .all()
        )
    moved: list[str] = []
    for name in sorted(legacy):
        key = f"sha256:{builtin_digest(name)}"
        with write_transaction(engine) as conn:
            # reseal the merged state only when both halves were sealed: an unsealed legacy row (or one a
            # database writer planted under a built-in's name) stays refused until the owner reviews it
            blessed = sealer is not None and all(
                _ledger_seals.is_sealed(conn, sealer, n) for n in (name, key)
            )
            if _budget_row(conn, key) is None:
                conn.execute(
                    sa.update(budgets_table).where(budgets_table.c.dataset == name).values(dataset=key)
                )
            else:  # a budget was already set under the digest: it wins, the spends still count against it
                conn.execute(sa.delete(budgets_table).where(budgets_table.c.dataset == name))
            conn.execute(sa.update(spends_table).where(spends_table.c.dataset == name).values(dataset=key))
            if _label(conn, key) is None:
                conn.execute(sa.insert(labels_table).values(dataset=key, label=name))
            if sealer is not None:
                _ledger_seals.reseal(conn, sealer, name)  # no rows left: drops its seal
                if blessed:
                    _ledger_seals.reseal(conn, sealer, key)
        log("privacy.budget.migrate", key, "ok", {"from": name})
        moved.append(name)
    return moved
