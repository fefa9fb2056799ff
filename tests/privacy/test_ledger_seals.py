"""Issue 11 item 4: privacy-ledger rows are sealed; a database writer without keys gets IntegrityError.

Each test is the attack (a raw SQL edit of the catalog, as an insider with database access and no key ring
would make) against the real vault's ledger; the first test shows the same edits *do* buy budget when the
ledger runs without a sealer (the undefended baseline), so the defence is what refuses them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests._support.postgres import postgres_engine

from bastion.cli import run
from bastion.crypto.kdf import KdfParams
from bastion.errors import BudgetExhausted, IntegrityError
from bastion.privacy.ledger import PrivacyLedger, budgets_table, ledger_for_vault, spends_table
from bastion.store.tables import seals
from bastion.vault import init_project, open_vault

DS = "sha256:" + "ab" * 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    init_project(home=h, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(h))
    return h


@pytest.fixture
def spent(home: Path) -> Iterator[Path]:
    """A budget of ε=2 with two settled spends of ε=0.5 and 0.75 (ε=0.75 left)."""
    with open_vault(home=home) as vault:
        ledger = ledger_for_vault(vault)
        ledger.set_budget(DS, epsilon=2.0, delta=1e-4, label="patients")
        for eps in (0.5, 0.75):
            r = ledger.reserve(datasets=DS, epsilon=eps, delta=1e-6, kind="train")
            ledger.settle(r, epsilon=eps, delta=1e-6)
    yield home


def _sql(home: Path, *statements: sa.Executable) -> None:
    """The insider: writes the catalog database directly, without the passphrase."""
    engine = sa.create_engine(f"sqlite:///{home / 'bastion.db'}")
    with engine.begin() as conn:
        for st in statements:
            conn.execute(st)
    engine.dispose()


def _last_spend_id() -> sa.ScalarSelect[int]:
    return sa.select(sa.func.max(spends_table.c.id)).scalar_subquery()


EDITS: dict[str, Callable[[], list[sa.Executable]]] = {
    "raise the budget": lambda: [sa.update(budgets_table).values(epsilon=100.0)],
    "raise delta": lambda: [sa.update(budgets_table).values(delta=0.5)],
    "delete the latest spend": lambda: [sa.delete(spends_table).where(spends_table.c.id == _last_spend_id())],
    "delete the first spend": lambda: [
        sa.delete(spends_table).where(
            spends_table.c.id == sa.select(sa.func.min(spends_table.c.id)).scalar_subquery()
        )
    ],
    "delete every spend": lambda: [sa.delete(spends_table)],
    "edit a settled epsilon": lambda: [sa.update(spends_table).values(epsilon=0.0)],
    "edit a planned epsilon of a reserved spend": lambda: [
        sa.update(spends_table)
        .where(spends_table.c.id == _last_spend_id())
        .values(status="reserved", epsilon=None)
    ],
    "move a spend to another dataset": lambda: [
        sa.update(spends_table)
        .where(spends_table.c.id == _last_spend_id())
        .values(dataset="sha256:" + "cd" * 32)
    ],
    "delete the seal": lambda: [sa.delete(seals).where(seals.c.kind == "privacy")],
    "delete budget, spends and keep the seal": lambda: [sa.delete(spends_table), sa.delete(budgets_table)],
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_database_edit_is_refused_never_granted(spent: Path, edit: str) -> None:
    _sql(spent, *EDITS[edit]())
    with open_vault(home=spent) as vault:
        ledger = ledger_for_vault(vault)
        with pytest.raises(IntegrityError):
            ledger.reserve(datasets=DS, epsilon=1.0, delta=0.0, kind="train")  # > the ε=0.75 really left
        with pytest.raises(IntegrityError):
            ledger.status(DS)
        with pytest.raises(IntegrityError):
            ledger.has_budget(DS)
        with pytest.raises(IntegrityError):  # an admin's set_budget does not bless the edited state either
            ledger.set_budget(DS, epsilon=3.0, delta=1e-4)
        with pytest.raises(IntegrityError), ledger.charge(datasets=DS, epsilon=0.1, delta=0.0, kind="query"):
            pass
        assert DS in ledger.unsealed()


def test_without_seals_the_same_edits_buy_budget(spent: Path) -> None:
    """The baseline: an unsealed ledger (no key) believes the edited rows, so the defence is the seal."""
    _sql(spent, sa.delete(spends_table).where(spends_table.c.id == _last_spend_id()))
    with open_vault(home=spent) as vault:
        unchecked = PrivacyLedger(vault.engine)
        unchecked.reserve(datasets=DS, epsilon=1.0, delta=0.0, kind="train")  # 0.25 ε more than was left


def test_honest_use_passes_and_a_settled_overspend_still_counts(spent: Path) -> None:
    with open_vault(home=spent) as vault:
        ledger = ledger_for_vault(vault)
        st = ledger.status(DS)
        assert st.epsilon_spent == pytest.approx(1.25) and st.label == "patients"
        with pytest.raises(BudgetExhausted):
            ledger.reserve(datasets=DS, epsilon=1.0, delta=0.0, kind="train")
        with ledger.charge(datasets=DS, epsilon=0.5, delta=0.0, kind="query") as r:
            ledger.settle(r, epsilon=0.5, delta=0.0)
        ledger.set_budget(DS, epsilon=3.0, delta=1e-4)
        assert ledger.status(DS).epsilon_remaining == pytest.approx(1.25)
        assert ledger.unsealed() == []


def test_a_failed_run_stays_charged_and_sealed(spent: Path) -> None:
    with open_vault(home=spent) as vault:
        ledger = ledger_for_vault(vault)
        with pytest.raises(RuntimeError), ledger.charge(datasets=DS, epsilon=0.5, delta=0.0, kind="train"):
            raise RuntimeError("the run crashed")
        assert ledger.status(DS).epsilon_spent == pytest.approx(1.75)


def test_cli_refuses_with_exit_1_and_access_seal_migrates(
    spent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(spent, sa.update(budgets_table).values(epsilon=100.0))
    assert run(["privacy", "budget", "show", DS]) == 1
    err = capsys.readouterr().err
    assert "privacy ledger" in err and "Traceback" not in err
    assert run(["access", "seal"]) == 1  # lists it for review
    assert f"privacy:{DS}" in capsys.readouterr().err
    assert run(["access", "seal", "--yes"]) == 0  # the owner reviewed the change and accepts it
    assert f"privacy:{DS}" in capsys.readouterr().out
    assert run(["access", "seal"]) == 0
    assert run(["privacy", "budget", "show", DS, "--format", "json"]) == 0
    assert '"epsilon_budget": 100.0' in capsys.readouterr().out


def test_legacy_unsealed_rows_are_refused_until_the_owner_seals(home: Path) -> None:
    with open_vault(home=home) as vault:
        PrivacyLedger(vault.engine).set_budget(DS, epsilon=1.0, delta=1e-4)  # written before seals
        ledger = ledger_for_vault(vault)
        with pytest.raises(IntegrityError, match="not sealed"):
            ledger.reserve(datasets=DS, epsilon=0.1, delta=0.0, kind="query")
        assert ledger.seal_all() == [DS]
        ledger.reserve(datasets=DS, epsilon=0.1, delta=0.0, kind="query")
        assert "privacy.seal" in [e.action for e in vault.audit.entries()]


def test_a_planted_builtin_name_budget_is_not_blessed_by_the_migration(home: Path) -> None:
    with open_vault(home=home) as vault:
        ledger_for_vault(vault)
    _sql(
        home,
        sa.insert(budgets_table).values(
            dataset="digits", epsilon=1e6, delta=0.1, updated_at=sa.func.current_timestamp(), updated_by="x"
        ),
    )
    from bastion.privacy.training import ledger_key

    with open_vault(home=home) as vault:
        ledger = ledger_for_vault(vault)  # moves it to the digest key, but does not seal it
        with pytest.raises(IntegrityError):
            ledger.reserve(datasets=ledger_key("digits"), epsilon=5.0, delta=0.0, kind="train")


def test_a_replayed_older_ledger_fails_log_verify(spent: Path, tmp_path: Path) -> None:
    """Rows and seal restored from a backup taken before a spend: the seal holds, the log does not."""
    backup = tmp_path / "catalog-backup.db"
    shutil.copy(spent / "bastion.db", backup)
    with open_vault(home=spent) as vault:
        ledger_for_vault(vault).reserve(datasets=DS, epsilon=0.5, delta=0.0, kind="query")
    assert run(["log", "verify"]) == 0
    engine = sa.create_engine(f"sqlite:///{backup}")
    with engine.connect() as conn:
        old_spends = [dict(r._mapping) for r in conn.execute(sa.select(spends_table))]
        old_seals = [
            dict(r._mapping) for r in conn.execute(sa.select(seals).where(seals.c.kind == "privacy"))
        ]
    engine.dispose()
    target = sa.create_engine(f"sqlite:///{spent / 'bastion.db'}")
    with target.begin() as conn:
        conn.execute(sa.delete(spends_table))
        conn.execute(sa.delete(seals).where(seals.c.kind == "privacy"))
        conn.execute(sa.insert(spends_table), old_spends)
        conn.execute(sa.insert(seals), old_seals)
    target.dispose()
    with open_vault(home=spent) as vault:
        assert ledger_for_vault(vault).status(DS).epsilon_spent == pytest.approx(1.25)  # the seal accepts it
    assert run(["log", "verify"]) == 1  # the log remembers the spend


def test_sealed_ledger_on_postgresql(postgres_url: str) -> None:
    """Floats and timestamps round-trip PostgreSQL exactly, so honest rows check and edited ones do not."""
    from bastion.crypto.seal import RowSealer

    with postgres_engine(postgres_url, prefix="ledger_seal") as engine:
        ledger = PrivacyLedger(engine, actor="pg", sealer=RowSealer(os.urandom(32)))
        ledger.set_budget(DS, epsilon=1.0, delta=1e-5)
        r = ledger.reserve(datasets=DS, epsilon=0.7, delta=1e-6, kind="query", details={"q": "count"})
        ledger.settle(r, epsilon=0.3, delta=1e-7)
        assert ledger.status(DS).epsilon_spent == pytest.approx(0.3) and ledger.unsealed() == []
        with engine.begin() as conn:
            conn.execute(sa.update(spends_table).values(epsilon=0.0))
        with pytest.raises(IntegrityError):
            ledger.reserve(datasets=DS, epsilon=0.9, delta=0.0, kind="query")
