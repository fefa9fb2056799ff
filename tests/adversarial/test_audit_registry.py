"""The audit's plug-in axis: every registered family runner honours the runner contract
(:mod:`bastion.adversarial.audit.interface`), and a new family plugs in through the registry."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bastion.adversarial import audit
from bastion.adversarial.audit import BUDGETS, AuditTarget, SectionResult
from bastion.adversarial.audit.registry import family_runner
from bastion.adversarial.grading import FAMILIES, GRADES, INCOMPLETE
from bastion.errors import Conflict, InvalidInput

TINY = dataclasses.replace(
    BUDGETS["quick"],
    name="tiny",
    n_eval=30,
    pgd_steps=3,
    apgd_steps=3,
    square_queries=20,
    hsj_iterations=1,
    hsj_examples=2,
    n_shadows=2,
    mia_per_side=40,
    shadow_epochs=2,
    shadow_pool=200,
    extraction_budgets=(40,),
    extraction_strategies=("random",),
    adaptive_steps=3,
)


def _noop(progress_calls: list[tuple[str, float, str]]):  # type: ignore[no-untyped-def]
    return lambda family, fraction, message: progress_calls.append((family, fraction, message))


def test_the_four_families_are_registered() -> None:
    assert set(FAMILIES) <= set(audit.families())


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_runner_honours_the_contract(family: str, digits, digits_model, digits_trainer) -> None:  # type: ignore[no-untyped-def]
    x, y = digits.x_test[:120], digits.y_test[:120]
    xt, yt = digits.x_train[:300], digits.y_train[:300]
    target = AuditTarget(model=digits_model, x=x, y=y, x_train=xt, y_train=yt, trainer=digits_trainer)
    before = (x.copy(), xt.copy())
    calls: list[tuple[str, float, str]] = []
    result = family_runner(family)(target, TINY, 5, _noop(calls))
    assert isinstance(result, SectionResult) and result.family == family and result.seed == 5
    assert result.status == "ok" and result.grade in GRADES
    assert all(c[0] == family and 0.0 <= c[1] <= 1.0 for c in calls)
    json.dumps(result.to_dict())  # serialisable as it stands
    np.testing.assert_array_equal(target.x, before[0])  # the target is never modified
    np.testing.assert_array_equal(target.x_train, before[1])


@pytest.mark.parametrize("family", ["membership", "poisoning"])
def test_a_family_without_what_it_needs_is_skipped_with_a_reason(family: str, digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    # No training rows (membership has no members to test) and no training recipe (poisoning cannot retrain).
    target = AuditTarget(model=digits_model, x=digits.x_test[:60], y=digits.y_test[:60])
    result = family_runner(family)(target, TINY, 0, _noop([]))
    assert result.status == "skipped" and result.family == family and family in result.reason
    assert result.grade is None


def test_a_new_family_plugs_in_and_the_overall_grade_stays_incomplete(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    def toy(t, b, seed, progress):  # type: ignore[no-untyped-def]
        acc = float((t.model.predict(t.x) == t.y).mean())
        progress("toy", 0.5, "half")
        return SectionResult("toy", "ok", seed, metrics={"accuracy": acc}, grade="A", reason="toy: A")

    audit.register_family("toy", toy)
    try:
        with pytest.raises(Conflict):
            audit.register_family("toy", toy)
        report = audit.run_audit(
            target=AuditTarget(model=digits_model, x=digits.x_test[:50], y=digits.y_test[:50]),
            attacks=["toy"],
        )
        assert report.sections["toy"].metrics["accuracy"] > 0.8
        assert report.grade == INCOMPLETE  # the four families did not run
    finally:
        audit.unregister_family("toy")
    with pytest.raises(InvalidInput, match="unknown attack family"):
        audit.run_audit(
            target=AuditTarget(model=digits_model, x=digits.x_test[:50], y=digits.y_test[:50]),
            attacks=["toy"],
        )
