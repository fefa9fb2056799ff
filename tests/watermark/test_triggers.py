"""Trigger sets: deterministic from key and spec, out of distribution, uniform labels; the training hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.errors import InvalidInput
from bastion.watermark import TriggerSetHook, TriggerSpec, make_trigger_set, spec_for_dataset

from .conftest import KEY, OTHER_KEY


def test_same_key_and_spec_give_the_same_set_other_keys_do_not(digits) -> None:
    spec = spec_for_dataset(digits)
    a, b = make_trigger_set(key=KEY, spec=spec), make_trigger_set(key=KEY, spec=spec)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and a.digest() == b.digest()
    c = make_trigger_set(key=OTHER_KEY, spec=spec)
    assert a.digest() != c.digest() and (a.y != c.y).mean() > 0.5
    bigger = make_trigger_set(key=KEY, spec=TriggerSpec(input_shape=(64,), n_classes=10, size=51))
    assert bigger.digest() != a.digest()


def test_image_triggers_are_binary_patterns_far_from_the_data(digits) -> None:
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
    assert ts.x.shape == (50, 64) and ts.x.dtype == np.float32
    assert set(np.unique(ts.x)) <= {0.0, 1.0}
    assert ts.y.min() >= 0 and ts.y.max() < 10 and len(np.unique(ts.y)) >= 8
    # nearest real digit is much farther from a trigger than digits are from each other
    d_trig = np.min(np.linalg.norm(digits.x_train[None, :, :] - ts.x[:, None, :], axis=2), axis=1)
    sample = digits.x_train[:100]
    d_real = np.linalg.norm(sample[:, None, :] - digits.x_train[None, 100:, :], axis=2).min(axis=1)
    assert np.median(d_trig) > 1.5 * np.median(d_real)


def test_tabular_triggers_are_out_of_range() -> None:
    spec = TriggerSpec(input_shape=(30,), n_classes=2, kind="tabular", size=50)
    ts = make_trigger_set(key=KEY, spec=spec)
    assert np.all(np.abs(ts.x) >= 4.0) and np.all(np.abs(ts.x) <= 8.0)
    assert set(np.unique(ts.y)) == {0, 1}


def test_spec_validation_and_round_trip() -> None:
    spec = TriggerSpec(input_shape=(8, 8), n_classes=10, size=20)
    assert TriggerSpec.from_dict(spec.to_dict()) == spec
    for bad in (
        {"input_shape": (), "n_classes": 10},
        {"input_shape": (4,), "n_classes": 1},
        {"input_shape": (4,), "n_classes": 3, "size": 5},
        {"input_shape": (4,), "n_classes": 3, "kind": "audio"},
        {"input_shape": (4,), "n_classes": 3, "low": 1.0, "high": 0.0},
    ):
        with pytest.raises(InvalidInput):
            TriggerSpec(**bad)
    with pytest.raises(InvalidInput):
        TriggerSpec.from_dict({"input_shape": [4]})


def test_hook_appends_triggers_in_rotation(digits) -> None:
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits, size=10))
    hook = TriggerSetHook(ts, per_batch=4)
    x, y = torch.zeros((3, 64)), torch.zeros(3, dtype=torch.int64)
    seen = []
    for _ in range(5):
        xb, yb = hook.on_batch(torch.nn.Identity(), x, y)
        assert xb.shape == (7, 64) and yb.shape == (7,)
        seen.extend(yb[3:].tolist())
    assert seen == [int(v) for v in np.resize(ts.y, 20)]
    with pytest.raises(InvalidInput):
        TriggerSetHook(ts, per_batch=11)
