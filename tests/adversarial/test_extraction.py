"""Model extraction: surrogates from queries, fidelity vs budget, query accounting, errors."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.adversarial.attacks.extraction import extract
from bastion.errors import InvalidInput
from bastion.models import CallableAdapter, TorchAdapter


@pytest.mark.parametrize("strategy", ["random", "knockoff", "jacobian"])
def test_extract_strategies(digits, digits_model: TorchAdapter, strategy: str) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def victim_fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return digits_model.predict_proba(x)

    victim = CallableAdapter(victim_fn, n_classes=10, input_shape=64)
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
