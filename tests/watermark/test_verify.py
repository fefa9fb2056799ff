"""The must-holds on digits: watermarked p < 1e-6 with ≤ 1 pp accuracy drop, independent models p > 0.01,
clear errors for a wrong key or input shape, and robustness to fine-tuning and 50 % magnitude pruning."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import IntegrityError, InvalidInput
from bastion.models.adapters import CallableAdapter
from bastion.watermark import (
    NOT_DETECTED_P,
    OWNED_P,
    adapter_for,
    binomial_p_value,
    fine_tune,
    make_record,
    make_trigger_set,
    prune_magnitude,
    spec_for_dataset,
    verify_triggers,
)
from bastion.watermark.verify import verdict_for

from .conftest import KEY, OTHER_KEY


def _check(module, digits, key=KEY):
    ts = make_trigger_set(key=key, spec=spec_for_dataset(digits))
    return verify_triggers(model=adapter_for(module, ts.spec), trigger_set=ts)


def test_watermarked_model_is_owned_with_at_most_one_point_accuracy_drop(
    digits, clean_model, watermarked_model
) -> None:
    result = _check(watermarked_model.module, digits)
    assert result.p_value < 1e-6 and result.verdict == "owned" and result.trigger_accuracy > 0.9
    assert clean_model.accuracy - watermarked_model.accuracy <= 0.01
    # the same architecture, data and seed without the watermark: no claim
    baseline = _check(clean_model.module, digits)
    assert baseline.p_value > NOT_DETECTED_P and baseline.verdict == "not_detected"


def test_independent_models_give_no_false_ownership_claims(digits, independent_models) -> None:
    for trained in independent_models:
        result = _check(trained.module, digits)
        assert result.p_value > 0.01, result
        assert result.verdict == "not_detected"


def test_a_different_key_finds_nothing_in_the_watermarked_model(digits, watermarked_model) -> None:
    assert _check(watermarked_model.module, digits, key=OTHER_KEY).p_value > 0.01


def test_wrong_key_and_wrong_input_shape_are_clear_errors(digits, watermarked_model) -> None:
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
    record = make_record(ts)
    with pytest.raises(InvalidInput, match="wrong watermark key"):
        record.check_opens(OTHER_KEY)
    assert record.check_opens(KEY).digest() == ts.digest()
    narrow = CallableAdapter(lambda x: np.zeros((len(x), 10)) + 0.1, n_classes=10, input_shape=(32,))
    with pytest.raises(InvalidInput, match="wrong input shape"):
        verify_triggers(model=narrow, trigger_set=ts)
    few = CallableAdapter(lambda x: np.zeros((len(x), 3)) + 1 / 3, n_classes=3, input_shape=(64,))
    with pytest.raises(InvalidInput, match="classes"):
        verify_triggers(model=few, trigger_set=ts)
    forged = {**record.to_dict(), "trigger_digest": "00" * 32}
    with pytest.raises(IntegrityError):
        type(record).from_dict(forged)


def test_watermark_survives_fine_tuning_and_half_pruning(digits, watermarked_model) -> None:
    pruned = copy.deepcopy(watermarked_model.module)
    zeroed = prune_magnitude(pruned, fraction=0.5)
    total = sum(p.numel() for n, p in pruned.named_parameters() if n.endswith("weight"))
    assert zeroed >= 0.49 * total
    assert _check(pruned, digits).p_value < OWNED_P
    tuned = copy.deepcopy(watermarked_model.module)
    accuracy = fine_tune(tuned, digits, epochs=5, lr=0.02, seed=7)
    assert accuracy > 0.9
    assert _check(tuned, digits).p_value < OWNED_P


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), data=st.data(), chance=st.sampled_from([0.1, 1 / 9, 0.5, 0.25]))
def test_binomial_p_value_matches_the_naive_tail_sum(n: int, data, chance: float) -> None:
    hits = data.draw(st.integers(0, n))
    naive = sum(math.comb(n, k) * chance**k * (1 - chance) ** (n - k) for k in range(hits, n + 1))
    assert binomial_p_value(hits, n, chance) == pytest.approx(naive, rel=1e-9, abs=1e-300)


def test_verdict_thresholds() -> None:
    assert verdict_for(1e-7) == "owned"
    assert verdict_for(1e-6) == "inconclusive"
    assert verdict_for(0.0099) == "inconclusive"
    assert verdict_for(0.01) == "not_detected"
    with pytest.raises(InvalidInput):
        binomial_p_value(5, 4, 0.1)
