"""The privacy ledger: budgets per dataset, reservations refused before training, spends, audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests._support.postgres import postgres_engine

from bastion.errors import BudgetExhausted, InvalidInput, NotFound
from bastion.models.data import load_dataset
from bastion.privacy.ledger import PrivacyLedger
from bastion.privacy.training import DPSettings, ledger_key, plan_private_run, train_recipe
from bastion.store.auditlog import AuditLog
from bastion.store.db import open_engine


class Ed25519Signer:
    """A real signer for the audit log's tree heads."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        self._key.public_key().verify(signature, data)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = open_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def audit(engine: sa.Engine) -> AuditLog:
    from bastion.store.db import ensure_tables

    ensure_tables(engine)
    return AuditLog(engine, Ed25519Signer())


def test_budget_reserve_settle_and_refuse(engine: sa.Engine, audit: AuditLog) -> None:
    ledger = PrivacyLedger(engine, audit=audit, actor="alice")
    with pytest.raises(NotFound):
        ledger.status("digits")
    ledger.set_budget("digits", epsilon=3.0, delta=1e-4)
    r = ledger.reserve(datasets="digits", epsilon=2.0, delta=1e-5, kind="train")
    assert ledger.status("digits").epsilon_spent == pytest.approx(2.0)  # reserved counts at plan
    ledger.settle(r, epsilon=1.5, delta=1e-5)
    st = ledger.status("digits")
    assert st.epsilon_spent == pytest.approx(1.5) and st.epsilon_remaining == pytest.approx(1.5)
    assert [s.status for s in st.spends] == ["spent"]
    with pytest.raises(BudgetExhausted, match="exhausted"):
        ledger.reserve(datasets="digits", epsilon=1.6, delta=1e-5, kind="query")
    assert len(ledger.status("digits").spends) == 1  # the refused spend charged nothing
    ledger.reserve(datasets="digits", epsilon=1.5, delta=1e-5, kind="query")  # exactly the rest fits
    with pytest.raises(BudgetExhausted):
        ledger.reserve(datasets="digits", epsilon=1e-3, delta=0.0, kind="query")
    with pytest.raises(InvalidInput, match="already settled"):
        ledger.settle(r, epsilon=0.1, delta=0.0)
    actions = [(e.action, e.outcome) for e in audit.entries()]
    assert actions == [
        ("privacy.budget.set", "ok"),
        ("privacy.spend", "ok"),
        ("privacy.settle", "ok"),
        ("privacy.spend", "denied"),
        ("privacy.spend", "ok"),
        ("privacy.spend", "denied"),
    ]
    assert all(e.actor == "alice" for e in audit.entries())
    audit.verify()


def test_delta_budget_and_validation(engine: sa.Engine) -> None:
    ledger = PrivacyLedger(engine)
    ledger.set_budget("wine", epsilon=100.0, delta=2e-5)
    ledger.reserve(datasets="wine", epsilon=1.0, delta=1e-5, kind="train")
    ledger.reserve(datasets="wine", epsilon=1.0, delta=1e-5, kind="train")
    with pytest.raises(BudgetExhausted, match="δ"):
        ledger.reserve(datasets="wine", epsilon=1.0, delta=1e-5, kind="train")
    for bad in (
        {"epsilon": 0.0, "delta": 1e-5},
        {"epsilon": 1.0, "delta": 1.0},
        {"epsilon": -1, "delta": 0.1},
    ):
        with pytest.raises(InvalidInput):
            ledger.set_budget("wine", **bad)
    with pytest.raises(InvalidInput):
        ledger.reserve(datasets="wine", epsilon=1.0, delta=0.0, kind="gamble")
    with pytest.raises(InvalidInput):
        ledger.reserve(datasets=[], epsilon=1.0, delta=0.0, kind="query")


def test_no_budget_is_refused_and_there_is_no_default(engine: sa.Engine) -> None:
    # issue 12 item 28: an unknown dataset used to get ε=10 on its first spend (fail-open)
    with pytest.raises(BudgetExhausted, match="no privacy budget") as info:
        PrivacyLedger(engine).reserve(datasets="x", epsilon=0.1, delta=0.0, kind="query")
    assert "bastion privacy budget set x --epsilon" in (info.value.hint or "")
    with pytest.raises(TypeError):
        PrivacyLedger(engine, default_budget=(1.0, 1e-5))  # type: ignore[call-arg]
    ledger = PrivacyLedger(engine)
    with pytest.raises(BudgetExhausted, match="no privacy budget"):
        ledger.reserve(datasets="x", epsilon=0.1, delta=0.0, kind="query")
    assert not ledger.has_budget("x") and ledger.datasets() == []


def test_a_spend_on_several_datasets_is_all_or_nothing(engine: sa.Engine) -> None:
    ledger = PrivacyLedger(engine)
    ledger.set_budget("a", epsilon=5.0, delta=1e-3)
    ledger.set_budget("b", epsilon=1.0, delta=1e-3)
    with pytest.raises(BudgetExhausted, match="'b'"):
        ledger.reserve(datasets=["a", "b"], epsilon=2.0, delta=0.0, kind="train")
    assert ledger.status("a").epsilon_spent == 0.0
    ledger.reserve(datasets=["a", "b"], epsilon=1.0, delta=0.0, kind="train")
    assert ledger.status("a").epsilon_spent == ledger.status("b").epsilon_spent == 1.0


def test_concurrent_reservations_cannot_overspend(engine: sa.Engine) -> None:
    ledger = PrivacyLedger(engine)
    ledger.set_budget("digits", epsilon=1.0, delta=1e-3)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        try:
            ledger.reserve(datasets="digits", epsilon=0.4, delta=0.0, kind="query")
            outcomes.append("ok")
        except BudgetExhausted:
            outcomes.append("refused")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "ok"] + ["refused"] * 4
    assert ledger.status("digits").epsilon_spent == pytest.approx(0.8)


class _CountBatches:
    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def on_batch(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        return x, y


def test_training_is_refused_before_any_step_and_settled_after(engine: sa.Engine, audit: AuditLog) -> None:
    d = load_dataset("breast_cancer")
    dp = DPSettings(epsilon=2.0, delta=1e-5)
    ledger = PrivacyLedger(engine, audit=audit)
    key = ledger_key("breast_cancer")
    ledger.set_budget(key, epsilon=3.0, delta=1e-4)
    counter = _CountBatches()
    report = train_recipe(dataset=d, dp=dp, epochs=2, batch_size=64, ledger=ledger, hooks=[counter])
    assert counter.calls == report.steps > 0 and report.ledger_dataset == key
    st = ledger.status(key)
    assert st.epsilon_spent == pytest.approx(report.epsilon) and report.epsilon <= 2.0
    assert st.spends[0].details["steps"] == report.steps and report.spend_id == st.spends[0].spend_id
    refused = _CountBatches()
    with pytest.raises(BudgetExhausted):
        train_recipe(dataset=d, dp=dp, epochs=2, batch_size=64, ledger=ledger, hooks=[refused])
    assert refused.calls == 0  # refused before the data was touched
    with pytest.raises(BudgetExhausted, match="non-private"):
        train_recipe(dataset=d, epochs=1, ledger=ledger, hooks=[refused])
    assert refused.calls == 0
    assert [e.outcome for e in audit.entries() if e.action == "privacy.spend"] == ["ok", "denied"]


def test_a_crashed_run_is_charged_what_it_spent(engine: sa.Engine) -> None:
    d = load_dataset("breast_cancer")
    dp = DPSettings(epsilon=1.0, delta=1e-5)
    ledger = PrivacyLedger(engine)
    ledger.set_budget(ledger_key("breast_cancer"), epsilon=10.0, delta=1e-3)
    with pytest.raises(RuntimeError, match="simulated"):
        train_recipe(
            dataset=d, dp=dp, epochs=3, batch_size=64, ledger=ledger, hooks=[_CountBatches(fail_after=5)]
        )
    (spend,) = ledger.status(ledger_key("breast_cancer")).spends
    plan, _ = plan_private_run(n_train=d.n_train, batch_size=64, epochs=3, dp=dp)
    assert spend.status == "spent" and spend.details["failed"] is True
    assert 0 < spend.epsilon < plan.epsilon  # 5 of 21 steps were taken: charged for those, not zero


def test_ledger_on_postgresql(postgres_url: str) -> None:
    with postgres_engine(postgres_url, prefix="ledger") as engine:
        ledger = PrivacyLedger(engine, actor="pg")
        ledger.set_budget("digits", epsilon=1.0, delta=1e-5)
        r = ledger.reserve(datasets="digits", epsilon=0.7, delta=1e-6, kind="query", details={"q": "count"})
        ledger.settle(r, epsilon=0.7, delta=1e-6)
        with pytest.raises(BudgetExhausted):
            ledger.reserve(datasets="digits", epsilon=0.7, delta=0.0, kind="query")
        st = ledger.status("digits")
        assert st.epsilon_spent == pytest.approx(0.7) and st.spends[0].details == {"q": "count"}
        assert ledger.datasets() == ["digits"]
