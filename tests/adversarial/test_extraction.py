"""Model extraction: surrogates from queries, fidelity vs budget, query accounting, errors."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.adversarial.attacks.extraction import extract
from bastion.errors import InvalidInput
from bastion.models import CallableAdapter, TorchAdapter


def _counted(model: TorchAdapter) -> tuple[CallableAdapter, list[int]]:
    """``model`` behind a callable victim that records the size of every query batch."""
    calls: list[int] = []

    def victim_fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return model.predict_proba(x)

    return CallableAdapter(victim_fn, n_classes=10, input_shape=64), calls


@pytest.mark.parametrize("strategy", ["random", "knockoff", "jacobian"])
def test_extract_strategies(digits, digits_model: TorchAdapter, strategy: str) -> None:  # type: ignore[no-untyped-def]
    victim, calls = _counted(digits_model)
    res = extract(
        victim=victim,
        strategy=strategy,
        budgets=(50, 200),
        data=digits.x_train,
        eval_x=digits.x_test,
        eval_y=digits.y_test,
        clip_values=(0.0, 1.0),
        train_steps=300,
    )
    assert [p.queries for p in res.points] == [50, 200]
    assert res.queries_used == 200 == sum(calls) - len(digits.x_test)  # the last call labels eval_x
    assert isinstance(res.surrogate, TorchAdapter)
    assert res.points[-1].fidelity > 0.5  # far above the 10 % of chance
    if strategy != "random":
        assert res.points[-1].fidelity > 0.85
    assert res.to_dict()["strategy"] == strategy


def test_extract_errors(digits, digits_model: TorchAdapter) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="strategy"):
        extract(victim=digits_model, strategy="magic", eval_x=digits.x_test)
    with pytest.raises(InvalidInput, match="natural data"):
        extract(victim=digits_model, strategy="knockoff", eval_x=digits.x_test)
    with pytest.raises(InvalidInput, match="shape"):
        extract(victim=digits_model, strategy="random", eval_x=digits.x_test[:, :5])
    with pytest.raises(InvalidInput, match="budget"):
        extract(victim=digits_model, strategy="random", budgets=(0,), eval_x=digits.x_test)


@pytest.mark.parametrize("strategy", ["bucket", "jacobian-random", "mixup", "adaptive"])
def test_issue_20_strategies_spend_their_budget_and_steal(
    digits, digits_model: TorchAdapter, strategy: str
) -> None:  # type: ignore[no-untyped-def]
    """The attacks added for the theft defence (issue 20) use exactly their budget and, undefended, steal."""
    victim, calls = _counted(digits_model)
    res = extract(
        victim=victim,
        strategy=strategy,
        budgets=(100, 300),
        data=digits.x_train,
        eval_x=digits.x_test,
        clip_values=(0.0, 1.0),
        jacobian_seed_size=50,
        train_steps=300,
        reference=digits_model,  # fidelity against the clean model: the victim is not asked about eval_x
    )
    assert res.queries_used == 300 == sum(calls)
    assert res.points[-1].fidelity > (0.3 if strategy == "bucket" else 0.8)


def test_bucket_queries_stay_in_ten_public_buckets() -> None:
    from bastion.adversarial.attacks.extraction import _bucket_queries

    x = _bucket_queries(np.random.default_rng(0), 400, (64,), 0.0, 1.0)
    planes = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
    codes = (((x - 0.5) @ planes) > 0).astype(np.int64) @ (1 << np.arange(6))
    assert x.shape == (400, 64) and len(set(codes.tolist())) <= 10


@pytest.mark.slow
def test_audit_reports_agreement_with_the_reference_beside_the_endpoint(
    digits, digits_model: TorchAdapter
) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 gap 4: against an endpoint that misinforms (every class's mass moved to the next class),
    the copy agrees with the endpoint's answers (fidelity) but not with the clean model behind it
    (reference_agreement) nor with the true labels (accuracy); the audit reports all three."""
    from bastion.adversarial.audit import AuditTarget, run_audit

    def defended(x: np.ndarray) -> np.ndarray:  # a fixed relabelling: learnable, and never the model's label
        return np.roll(digits_model.predict_proba(x), 1, axis=1)

    endpoint = CallableAdapter(defended, n_classes=10, input_shape=64)
    target = AuditTarget(
        model=endpoint,
        x=digits.x_test,
        y=digits.y_test,
        x_train=digits.x_train[:400],
        y_train=digits.y_train[:400],
        reference=digits_model,
    )
    section = run_audit(target=target, attacks=["extraction"], budget="quick", seed=0).to_dict()["sections"]
    m = section["extraction"]["metrics"]
    assert m["knockoff_fidelity"] > 0.6  # the copy learned the endpoint's (misinformed) answers
    assert m["knockoff_reference_agreement"] < 0.3 and m["knockoff_accuracy"] < 0.3
    assert m["reference_agreement"] < 0.3 and m["reference_accuracy"] > 0.9 and m["victim_accuracy"] < 0.3
    assert any("reference (clean) model" in n for n in section["extraction"]["notes"])
