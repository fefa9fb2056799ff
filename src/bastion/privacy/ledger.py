"""The privacy ledger: a budget (ε, δ) per dataset in the catalog, and every spend against it.

Every DP training run and every DP query *reserves* its planned (ε, δ) on each dataset it reads before it
touches the data, and *settles* the actual spend afterwards. A reservation that would take a dataset past its
budget is refused with :class:`~bastion.errors.BudgetExhausted` (and the refusal is audit-logged); nothing is
trained or released. The check and the insert happen in one transaction under the store's write lock, so two
concurrent runs cannot both squeeze into the last bit of a budget.

Composition is basic sequential composition (ε and δ add up across spends). This is loose for many DP-SGD
runs on the same data (advanced or RDP composition would give less), but it is never optimistic.

A spend that is never settled (the process failed mid-run) stays charged at its planned ε: fail closed.

There is no default budget: a spend on a dataset nobody gave a budget is refused (fail closed), with a hint
naming the command that sets one. The CLI and the library entry points key budgets by the dataset's content
digest (``sha256:…``, see :func:`dataset_key`), so copying or renaming a data file does not give it a fresh
budget; a human label ("digits", "patients.csv") is kept beside the key for display only.

The rows are untrusted storage (issue 11 item 4): with a ``sealer`` (always, through :func:`ledger_for_vault`)
each dataset's budget and spends are sealed with a key from the key ring and checked on every read that grants
something, so a database writer without keys who raises a budget, deletes a spend or edits an ε gets an
:class:`~bastion.errors.IntegrityError` (exit 1), never extra budget (:mod:`bastion.privacy._ledger_seals`).

Size (over 400 lines, on purpose): the tables, records and the legacy-key migration live in
:mod:`bastion.privacy._ledger_rows` (re-exported here); what stays is one class whose reserve, settle and
charge share one check-seal-insert-reseal transaction, kept in one place so the budget check cannot drift
from the write it guards.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bastion.crypto.seal import RowSealer
from bastion.errors import BudgetExhausted, ConfigError, InvalidInput, NotFound
from bastion.privacy import _ledger_seals
from bastion.privacy._ledger_rows import (
    KINDS,
    MAX_DATASET_NAME,
    TOLERANCE,
    BudgetStatus,
    Reservation,
    Spend,
    _budget_row,
    _check_dataset,
    _check_datasets,
    _describe,
    _jsonable,
    _label,
    _spends,
    _totals,
    budgets_table,
    labels_table,
    migrate_legacy_keys,
    spends_table,
)
from bastion.privacy.dp import check_delta, check_epsilon
from bastion.store.db import ensure_tables, utcnow, write_transaction
from bastion.store.interface import AuditSink

# The permission each ledger operation needs when the ledger belongs to a vault (``authorize`` is set).
PERMISSIONS: dict[str, str] = {
    "set_budget": "access:manage",
    "read": "registry:read",
    "train": "privacy:train",
    "query": "privacy:train",
    "audit": "audit:run",
}


class PrivacyLedger:
    """Budgets and spends per dataset, stored in the catalog database and audit-logged.

    A spend on a dataset without a budget is refused: budgets are only ever set explicitly
    (:meth:`set_budget`, ``bastion privacy budget set``). ``authorize(permission)`` (a vault's access check,
    see :func:`ledger_for_vault`) is called before every operation with the permission in
    :data:`PERMISSIONS`, so a library caller is held to the same rules as the CLI. ``sealer`` (the key ring's
    row sealer) authenticates the rows; without one (a bare engine, e.g. in a test) nothing is checked.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        audit: AuditSink | None = None,
        actor: str = "local",
        authorize: Callable[[str], None] | None = None,
        sealer: RowSealer | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.sealer = sealer
        self.audit = audit
        self.actor = actor
        self._authorize = authorize
        self._now = now
        ensure_tables(engine)

    def migrate_legacy_keys(self) -> list[str]:
        """Move budgets and spends that earlier versions keyed by a built-in's *name* to its digest key
        (:func:`bastion.privacy._ledger_rows.migrate_legacy_keys`); returns the names moved."""
        return migrate_legacy_keys(self.engine, self.sealer, self._log)

    def _allow(self, operation: str) -> None:
        if self._authorize is not None:
            self._authorize(PERMISSIONS[operation])

    def _check_seal(self, conn: Connection, name: str) -> None:
        if self.sealer is not None:
            _ledger_seals.check(conn, self.sealer, name)

    def _reseal(self, conn: Connection, name: str) -> None:
        if self.sealer is not None:
            _ledger_seals.reseal(conn, self.sealer, name)

    def unsealed(self) -> list[str]:
        """Datasets whose budget or spends fail their seal (what ``bastion access seal --yes`` blesses)."""
        with self.engine.connect() as conn:
            return _ledger_seals.unsealed(conn, self._need_sealer())

    def seal_all(self) -> list[str]:
        """Seal every dataset's ledger as it is now: the owner's migration step (the caller checks it is the
        owner, as ``Vault.seal_state`` does). Returns the datasets sealed; audit-logged."""
        with write_transaction(self.engine) as conn:
            names = _ledger_seals.seal_all(conn, self._need_sealer())
        self._log("privacy.seal", "-", "ok", {"datasets": names})
        return names

    def cross_check_log(self, entries: Any) -> None:
        """Refuse a ledger that lost a spend the (witnessed) audit log recorded (a replayed older state)."""
        with self.engine.connect() as conn:
            _ledger_seals.cross_check_log(conn, entries)

    def _need_sealer(self) -> RowSealer:
        if self.sealer is None:
            raise ConfigError(
                "the privacy ledger cannot be sealed or checked without the home's signing keys"
            )
        return self.sealer

    # --- budgets --------------------------------------------------------------------------------------------

    def set_budget(
        self, dataset: str, *, epsilon: float, delta: float, label: str | None = None
    ) -> BudgetStatus:
        """Set (or change) the total (ε, δ) a dataset may ever spend; ``label`` names it for display.

        Lowering it below the amount already spent is allowed and leaves the dataset exhausted."""
        self._allow("set_budget")
        name = _check_dataset(dataset)
        eps, dlt = check_epsilon(epsilon), check_delta(delta)
        shown = _check_dataset(label) if label is not None else None
        with write_transaction(self.engine) as conn:
            self._check_seal(conn, name)  # never bless a state someone changed outside bastion
            self._upsert_budget(conn, name, eps, dlt)
            self._reseal(conn, name)
            if shown is not None and shown != name:
                conn.execute(sa.delete(labels_table).where(labels_table.c.dataset == name))
                conn.execute(sa.insert(labels_table).values(dataset=name, label=shown))
        details: dict[str, Any] = {"epsilon": eps, "delta": dlt}
        if shown is not None:
            details["label"] = shown
        self._log("privacy.budget.set", name, "ok", details)
        return self.status(name)

    def label(self, dataset: str) -> str | None:
        """The display label recorded for ``dataset`` (``None`` when there is none)."""
        with self.engine.connect() as conn:
            return _label(conn, _check_dataset(dataset))

    def _upsert_budget(self, conn: Connection, name: str, eps: float, dlt: float) -> None:
        now = self._now()
        exists = conn.execute(
            sa.select(budgets_table.c.dataset).where(budgets_table.c.dataset == name)
        ).first()
        values = {"epsilon": eps, "delta": dlt, "updated_at": now, "updated_by": self.actor}
        if exists:
            conn.execute(sa.update(budgets_table).where(budgets_table.c.dataset == name).values(**values))
        else:
            conn.execute(sa.insert(budgets_table).values(dataset=name, **values))

    def has_budget(self, dataset: str) -> bool:
        """Whether ``dataset`` has a budget (the gate every training path asks; no permission needed)."""
        name = _check_dataset(dataset)
        with self.engine.connect() as conn:
            self._check_seal(conn, name)
            return _budget_row(conn, name) is not None

    def status(self, dataset: str) -> BudgetStatus:
        """The budget of ``dataset`` and its spends. Raises NotFound when it has no budget."""
        self._allow("read")
        name = _check_dataset(dataset)
        with self.engine.connect() as conn:
            self._check_seal(conn, name)
            row = _budget_row(conn, name)
            if row is None:
                raise NotFound(
                    f"no privacy budget for dataset {name!r}",
                    hint="an admin sets one with 'bastion privacy budget set DATASET --epsilon E'",
                )
            spends = _spends(conn, name)
            label = _label(conn, name)
        eps_spent, dlt_spent = _totals(spends)
        return BudgetStatus(
            dataset=name,
            label=label,
            epsilon_budget=float(row.epsilon),
            delta_budget=float(row.delta),
            epsilon_spent=eps_spent,
            delta_spent=dlt_spent,
            spends=tuple(spends),
        )

    def datasets(self) -> list[str]:
        self._allow("read")
        with self.engine.connect() as conn:
            return [
                str(r) for r in conn.execute(sa.select(budgets_table.c.dataset).order_by("dataset")).scalars()
            ]

    # --- spending -------------------------------------------------------------------------------------------

    def reserve(
        self,
        *,
        datasets: str | Sequence[str],
        epsilon: float,
        delta: float,
        kind: str,
        details: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Reservation:
        """Charge a planned (ε, δ) to every dataset, or raise BudgetExhausted and charge nothing.

        ``labels`` (dataset → display name) only make a refusal readable ("digits" beside its digest)."""
        names = _check_datasets(datasets)
        eps, dlt = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
        if kind not in KINDS:
            raise InvalidInput(f"spend kind must be one of {', '.join(KINDS)}")
        self._allow(kind)
        info = _jsonable(details or {})
        spend_id = secrets.token_hex(16)
        refusal: str | None = None
        hint = ""
        with write_transaction(self.engine) as conn:
            for name in names:
                given = (labels or {}).get(name)
                what = _describe(name, _label(conn, name) or given)
                shown = shlex.quote(given or _label(conn, name) or name)  # the hint names the caller's words
                self._check_seal(conn, name)
                row = _budget_row(conn, name)
                if row is None:
                    refusal = f"no privacy budget set for dataset {what}"
                    hint = (
                        f"an admin sets one first: bastion privacy budget set {shown} --epsilon E "
                        "(there is no default budget)"
                    )
                    break
                used_eps, used_dlt = _totals(_spends(conn, name))
                hint = (
                    f"an admin may raise it (bastion privacy budget set {shown} --epsilon E), or spend less"
                )
                if used_eps + eps > float(row.epsilon) + TOLERANCE:
                    refusal = (
                        f"privacy budget of {what} exhausted: spent ε={used_eps:.4g} "
                        f"of {float(row.epsilon):.4g}, this {kind} needs ε={eps:.4g}"
                    )
                    break
                if used_dlt + dlt > float(row.delta) * (1 + 1e-9):
                    refusal = (
                        f"privacy budget of {what} exhausted: spent δ={used_dlt:.3g} "
                        f"of {float(row.delta):.3g}, this {kind} needs δ={dlt:.3g}"
                    )
                    break
            if refusal is None:
                now = self._now()
                for name in names:
                    conn.execute(
                        sa.insert(spends_table).values(
                            spend_id=spend_id,
                            dataset=name,
                            kind=kind,
                            status="reserved",
                            epsilon_planned=eps,
                            delta_planned=dlt,
                            epsilon=None,
                            delta=None,
                            details_json=json.dumps(info, sort_keys=True),
                            actor=self.actor,
                            created_at=now,
                        )
                    )
                for name in names:
                    self._reseal(conn, name)
        target = ",".join(names)
        log_details = {"kind": kind, "epsilon": eps, "delta": dlt, "spend_id": spend_id}
        if refusal is not None:
            self._log("privacy.spend", target, "denied", {**log_details, "reason": refusal})
            raise BudgetExhausted(refusal, hint=hint)
        self._log("privacy.spend", target, "ok", log_details)
        return Reservation(spend_id=spend_id, datasets=names, kind=kind, epsilon=eps, delta=dlt)

    def settle(
        self,
        reservation: Reservation,
        *,
        epsilon: float,
        delta: float,
        details: Mapping[str, Any] | None = None,
    ) -> list[Spend]:
        """Record the actual (ε, δ) of a reserved spend (below the plan, or above it if a run overshot)."""
        eps = float(epsilon)
        if not (eps >= 0 and math.isfinite(eps)):
            raise InvalidInput(f"settled epsilon must be a finite number ≥ 0, got {epsilon}")
        dlt = check_delta(delta, allow_zero=True)
        info = _jsonable(details or {})
        with write_transaction(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    spends_table.c.id,
                    spends_table.c.dataset,
                    spends_table.c.status,
                    spends_table.c.details_json,
                ).where(spends_table.c.spend_id == reservation.spend_id)
            ).all()
            if not rows:
                raise NotFound(f"no reservation {reservation.spend_id}")
            touched = sorted({str(r.dataset) for r in rows})
            for name in touched:
                self._check_seal(conn, name)
            if any(r.status != "reserved" for r in rows):
                raise InvalidInput(f"spend {reservation.spend_id} is already settled")
            merged = {**json.loads(rows[0].details_json), **info}
            conn.execute(
                sa.update(spends_table)
                .where(spends_table.c.spend_id == reservation.spend_id)
                .values(
                    status="spent",
                    epsilon=eps,
                    delta=dlt,
                    details_json=json.dumps(merged, sort_keys=True),
                    settled_at=self._now(),
                )
            )
            for name in touched:
                self._reseal(conn, name)
        self._log(
            "privacy.settle",
            ",".join(reservation.datasets),
            "ok",
            {"spend_id": reservation.spend_id, "kind": reservation.kind, "epsilon": eps, "delta": dlt},
        )
        with self.engine.connect() as conn:
            return [
                s
                for name in reservation.datasets
                for s in _spends(conn, name)
                if s.spend_id == reservation.spend_id
            ]

    @contextmanager
    def charge(
        self,
        *,
        datasets: str | Sequence[str],
        epsilon: float,
        delta: float,
        kind: str,
        details: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterator[Reservation]:
        """Reserve for the duration of a block. A block that raises before settling stays charged at plan."""
        reservation = self.reserve(
            datasets=datasets, epsilon=epsilon, delta=delta, kind=kind, details=details, labels=labels
        )
        try:
            yield reservation
        except BaseException:
            if self._is_reserved(reservation):
                self.settle(
                    reservation,
                    epsilon=reservation.epsilon,
                    delta=reservation.delta,
                    details={"failed": True},
                )
            raise

    def _is_reserved(self, reservation: Reservation) -> bool:
        with self.engine.connect() as conn:
            statuses = conn.execute(
                sa.select(spends_table.c.status).where(spends_table.c.spend_id == reservation.spend_id)
            ).scalars()
            return any(s == "reserved" for s in statuses)

    def _log(self, action: str, target: str, outcome: str, details: Mapping[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(
                actor=self.actor, action=action, target=target, outcome=outcome, details=details
            )


def ledger_for_vault(vault: Any) -> PrivacyLedger:
    """The ledger of an open vault: its database, its audit log, its identity.

    A home whose ``bastion.toml`` still sets ``[privacy] default_budget``/``default_delta`` (the fail-open
    default of earlier versions) is refused rather than silently ignored."""
    section = vault.settings.section("privacy")
    stale = sorted(k for k in ("default_budget", "default_delta") if k in section)
    if stale:
        raise InvalidInput(
            f"bastion.toml [privacy] {', '.join(stale)} is no longer supported: "
            "there is no default privacy budget",
            hint="remove it; set each dataset's budget with 'bastion privacy budget set DATASET --epsilon E'",
        )

    def authorize(permission: str) -> None:
        vault.access.check(vault.identity, permission)

    sealer = vault.access.sealer
    if sealer is None:  # a vault always has its signing keys; refuse rather than run unchecked
        raise ConfigError("the privacy ledger cannot be checked without the home's signing keys")
    ledger = PrivacyLedger(
        vault.engine, audit=vault.audit, actor=vault.identity.name, authorize=authorize, sealer=sealer
    )
    ledger.migrate_legacy_keys()
    return ledger


__all__ = [
    "KINDS",
    "MAX_DATASET_NAME",
    "PERMISSIONS",
    "BudgetStatus",
    "PrivacyLedger",
    "Reservation",
    "Spend",
    "budgets_table",
    "labels_table",
    "ledger_for_vault",
    "spends_table",
]
