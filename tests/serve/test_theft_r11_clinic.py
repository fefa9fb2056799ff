"""Round 11 of the theft defence (issue 20, attack20e's finding 2): a clinic that re-sends each patient's
record with one or two of the same few lab fields re-measured is a feature-major prober to the narrow
steps' fan-in rule (``_theft_company``): the same features stepped off many anchors. The fan-in applies to
intensity-like rows only (``TheftPolicy.sensor_rows``; default: reference rows >= 0), so on standardised
tabular rows the clinic is not flagged; with the fan-in forced on, it is (the round-11 regression this test
pins).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.serve.theft import DefendedModel, build_defence
from bastion.watermark.keys import WatermarkKey


@pytest.mark.slow
@pytest.mark.parametrize("fan_in", [False, True])
def test_a_clinic_re_measuring_the_same_fields_is_not_flagged(fan_in: bool, kit: Any) -> None:
    """A clinic re-measuring 1-2 of 3 fixed fields at 0.2 x their spread (``kit.clinic_stream``)."""
    import torch

    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    torch.set_num_threads(1)
    d = load_dataset("breast_cancer", seed=0)
    victim = mlp_shadow_trainer(
        input_shape=(d.x_train.shape[1],), n_classes=2, hidden=(64,), epochs=30, batch_size=64, lr=3e-3
    )(d.x_train, d.y_train, 0)
    x = np.asarray(d.x_test, dtype=np.float32)
    flagged, lost, total = 0, 0, 0
    for s in range(6):
        guard = build_defence(
            key=WatermarkKey.from_secret(np.random.default_rng(100 + s).bytes(32)),
            reference_x=d.x_train,
            reference_y=d.y_train,
            n_classes=2,
            center=0.0,
            predict=victim.predict_proba,
        )
        assert guard._steps is not None and guard._steps.company is not None
        assert guard._steps.company.use_fan_in is False  # standardised rows: no fan-in by default
        guard._steps.company.use_fan_in = fan_in
        if fan_in:  # the round-11 rule as written: no confinement discount (round 13: it lifts the fan-in)
            guard._steps.confined = None
        served = DefendedModel(victim, guard, consumers=(f"clinic-{s}", f"addr:198.51.100.{s}"))
        rng = np.random.default_rng(s)
        rows = kit.clinic_stream(x, rng, rng.choice(x.shape[1], 3, replace=False), sigma=0.2, rows=2000)
        for start in range(0, len(rows), 10):
            p = np.asarray(victim.predict_proba(rows[start : start + 10]))
            got = np.asarray(served.predict_proba(rows[start : start + 10]))
            lost += int((got.argmax(1) != p.argmax(1)).sum())
            total += len(p)
        flagged += served.first_flag is not None
    if fan_in:
        assert flagged >= 2, flagged  # the round-11 rule as first written (attack20e: 4-6 of 10 streams)
    else:
        assert flagged == 0 and lost / total <= 0.01, (flagged, lost / total)
