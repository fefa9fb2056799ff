"""Seals of the privacy ledger (issue 11 item 4), on top of :mod:`bastion.crypto.seal`.

One seal per dataset (kind ``privacy``, key = the dataset key) covers its budget row *and* every spend row
charged to it, in id order: each spend's ids, kind, status, planned and settled (ε, δ) (as exact
``float.hex`` strings), actor, timestamps and a digest of its details. Every write (``set_budget``,
``reserve``, ``settle``, the legacy-key migration) reseals inside its transaction; every read that grants
something (``reserve``, ``status``, ``has_budget``, ``charge``) checks first. So a database writer without
the key ring who raises a budget, edits an ε, flips ``reserved`` to ``spent`` at a lower ε, or deletes any
spend (the latest included: the seal binds the whole list, so its count and its last row) gets an
:class:`~bastion.errors.IntegrityError`, never extra budget.

What a seal alone cannot catch is a *replay*: restoring an older dataset state together with its older
seal (e.g. from a backup taken before a spend). :func:`cross_check_log` replays the (witnessed) audit log's
``privacy.spend`` entries and refuses a database that lost a logged spend, and its ``privacy.budget.set``
entries and refuses a budget row other than the last one logged (a replayed higher budget, issue 11 F3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bastion.crypto.seal import RowSealer
from bastion.errors import IntegrityError
from bastion.store.seals import read_sealed, write_seal
from bastion.store.tables import seals

SEAL_KIND = "privacy"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _hex(value: Any) -> str | None:
    return None if value is None else float(value).hex()


def ledger_state(conn: Connection, dataset: str) -> dict[str, Any] | None:
    """The sealed state of one dataset, read from its rows (None when it has neither budget nor spends)."""
    from bastion.privacy.ledger import budgets_table, spends_table

    budget = conn.execute(sa.select(budgets_table).where(budgets_table.c.dataset == dataset)).first()
    rows = conn.execute(
        sa.select(spends_table).where(spends_table.c.dataset == dataset).order_by(spends_table.c.id)
    ).all()
    if budget is None and not rows:
        return None
    return {
        "budget": None
        if budget is None
        else [_hex(budget.epsilon), _hex(budget.delta), budget.updated_by, _iso(budget.updated_at)],
        "spends": [
            [
                int(r.id),
                r.spend_id,
                r.kind,
                r.status,
                _hex(r.epsilon_planned),
                _hex(r.delta_planned),
                _hex(r.epsilon),
                _hex(r.delta),
                r.actor,
                _iso(r.created_at),
                _iso(r.settled_at),
                hashlib.sha256(str(r.details_json).encode("utf-8")).hexdigest(),
            ]
            for r in rows
        ],
    }


def reseal(conn: Connection, sealer: RowSealer, dataset: str) -> None:
    """Seal ``dataset``'s state as it now is, inside the caller's (writing) transaction."""
    state = ledger_state(conn, dataset)
    if state is None:
        conn.execute(sa.delete(seals).where(seals.c.kind == SEAL_KIND, seals.c.key == dataset))
        return
    write_seal(conn, SEAL_KIND, dataset, sealer.seal(SEAL_KIND, dataset, state))


def check(conn: Connection, sealer: RowSealer, dataset: str) -> None:
    """Raise IntegrityError unless ``dataset``'s budget and spends are exactly what bastion last sealed.

    A dataset with no rows at all passes only when it has no seal either (a deleted budget *and* its
    spends, with the seal left behind, is refused)."""
    state, mac = read_sealed(conn, SEAL_KIND, dataset, lambda c: ledger_state(c, dataset))
    if state is None and mac is None:
        return
    sealer.check(
        SEAL_KIND,
        dataset,
        state if state is not None else {"budget": None, "spends": []},
        mac,
        what=f"the privacy ledger of dataset {dataset!r} (budget and spends)",
    )


def is_sealed(conn: Connection, sealer: RowSealer, dataset: str) -> bool:
    try:
        check(conn, sealer, dataset)
    except IntegrityError:
        return False
    return True


def all_datasets(conn: Connection) -> list[str]:
    """Every dataset key that has a budget, a spend or a seal."""
    from bastion.privacy.ledger import budgets_table, spends_table

    names = set(conn.execute(sa.select(budgets_table.c.dataset)).scalars())
    names |= set(conn.execute(sa.select(spends_table.c.dataset).distinct()).scalars())
    names |= set(conn.execute(sa.select(seals.c.key).where(seals.c.kind == SEAL_KIND)).scalars())
    return sorted(str(n) for n in names)


def unsealed(conn: Connection, sealer: RowSealer) -> list[str]:
    """Datasets whose ledger seal is missing or does not match (what ``access seal --yes`` would bless)."""
    return [name for name in all_datasets(conn) if not is_sealed(conn, sealer, name)]


def seal_all(conn: Connection, sealer: RowSealer) -> list[str]:
    """Seal every dataset's ledger as it is now (the owner's migration step); returns those resealed."""
    names = unsealed(conn, sealer)
    for name in names:
        reseal(conn, sealer, name)
    return names


def cross_check_log(conn: Connection, entries: Iterable[Any]) -> None:
    """Every spend the audit log recorded as granted must still be charged, to the same datasets.

    Catches a replayed (older, validly sealed) ledger state that a seal check alone accepts. Datasets
    renamed by the legacy-key migration (``privacy.budget.migrate``) are followed."""
    from bastion.privacy.ledger import spends_table

    charged: dict[str, list[str]] = {}
    for dataset, spend_id in conn.execute(
        sa.select(spends_table.c.dataset, spends_table.c.spend_id).order_by(spends_table.c.id)
    ).all():
        charged.setdefault(str(spend_id), []).append(str(dataset))
    renamed: dict[str, str] = {}
    logged: list[tuple[str, str]] = []
    budgets: dict[str, tuple[float, float]] = {}  # dataset -> the (ε, δ) its last `budget set` logged
    for e in entries:
        details = e.details or {}
        if (
            e.outcome == "ok"
            and e.action == "privacy.budget.migrate"
            and isinstance(details.get("from"), str)
        ):
            renamed[details["from"]] = str(e.target)
            if details["from"] in budgets:
                budgets[str(e.target)] = budgets.pop(details["from"])
        elif e.outcome == "ok" and e.action == "privacy.spend" and isinstance(details.get("spend_id"), str):
            logged.append((details["spend_id"], str(e.target)))
        elif e.outcome == "ok" and e.action == "privacy.budget.set":
            try:
                budgets[str(e.target)] = (float(details["epsilon"]), float(details["delta"]))
            except (KeyError, TypeError, ValueError):
                continue
    _check_budgets(conn, budgets)
    for spend_id, target in logged:
        have = charged.get(spend_id, [])
        if not have or ",".join(have) not in (target, ",".join(renamed.get(n, n) for n in target.split(","))):
            raise IntegrityError(
                f"privacy spend {spend_id} on {target!r} is in the audit log "
                "but gone from the ledger (rollback)"
            )


def _check_budgets(conn: Connection, logged: dict[str, tuple[float, float]]) -> None:
    """Every budget the log last set must be the budget row now (a replayed higher budget is refused)."""
    from bastion.privacy.ledger import budgets_table

    rows = {
        str(r.dataset): (float(r.epsilon), float(r.delta))
        for r in conn.execute(
            sa.select(budgets_table.c.dataset, budgets_table.c.epsilon, budgets_table.c.delta)
        )
    }
    for dataset, (eps, dlt) in logged.items():
        have = rows.get(dataset)
        if have != (eps, dlt):
            shown = "none" if have is None else f"ε={have[0]:g}, δ={have[1]:g}"
            raise IntegrityError(
                f"privacy budget of {dataset!r} is {shown} but the audit log last set ε={eps:g}, δ={dlt:g} "
                "(rollback)"
            )


__all__ = ["SEAL_KIND", "check", "cross_check_log", "ledger_state", "reseal", "seal_all", "unsealed"]
