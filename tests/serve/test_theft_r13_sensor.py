"""Round 13 of the theft defence (issue 20, fix20ab): on pixels too, a consumer's narrow steps confined to its
few dominant features are no evidence by their company (``_theft_confined``). A camera whose same three
flaky pixels are re-measured, image after image (1-2 of them, + N(0, 0.3 x the pixel's spread) on the last
image sent), steps the same pixels off many anchors: the fan-in rule called it a feature-major prober and
the small-steps test flagged it (round 12: ``StepTest.confined = None`` on pixels). On pixels the discount
lifts only the company rules (fan-in, line): the narrow null and the fan-out off one anchor still count. The
attacker's counter, probes confined to the model's three most important pixels off natural anchors, is
checked here: still flagged, and its copy gains little over one from its anchors alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.watermark.keys import WatermarkKey


def _guard(digits: Any, kit: Any, seed: int, confined: bool) -> Any:
    guard = kit.digits_defence(
        digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)), predict=True
    )
    assert guard._steps is not None and guard._steps.company is not None and guard._steps.company.use_fan_in
    if not confined:
        guard._steps.confined = None  # the round-12 behaviour on pixels
    return guard


@pytest.mark.slow
@pytest.mark.parametrize("confined", [True, False])
def test_a_camera_re_measuring_three_flaky_pixels_is_not_flagged(
    digits: Any, kit: Any, confined: bool
) -> None:
    guard = _guard(digits, kit, 11, confined)
    model = digits.adapter
    rng = np.random.default_rng(12)
    flagged, lost, total = [], 0, 0
    for s in range(3):
        pixels = rng.choice(64, 3, replace=False)
        rows = np.clip(kit.clinic_stream(digits.x_test, rng, pixels, sigma=0.3, rows=1500), 0.0, 1.0)
        first, changed = kit.serve_stream(model, guard, rows, (f"camera-{s}", f"addr:198.51.100.{30 + s}"))
        flagged.append(first)
        lost, total = lost + changed, total + len(rows)
    print("confined", confined, "first flags", flagged, "answers changed", lost, "of", total)
    if confined:
        assert flagged == [None] * 3 and lost / total <= 0.01, (flagged, lost)
    else:  # round 12: the fan-in (and line) rules flagged it
        assert any(f is not None for f in flagged), (flagged, lost)


@pytest.mark.slow
def test_probes_confined_to_three_important_pixels_are_flagged_and_gain_little(digits: Any, kit: Any) -> None:
    """40 natural anchors, then narrow probes on 1-3 of the model's three most important pixels off them
    (12 per anchor, below the fan-out; inside the small-steps band; the thief knows the discount): flagged
    within 2,000 rows, and a copy from the first 300 rows answered cleanly (the most it gets before any
    flag) agrees with the model less than 2 points more than a copy from its anchors alone."""
    guard = _guard(digits, kit, 13, True)
    rng = np.random.default_rng(14)
    x = digits.x_test
    anchors = x[rng.choice(len(x), 40, replace=False)]
    feats = kit.top_pixels(digits, anchors)[:3]
    first, fid_anchors, fid_rows = kit.confined_probes(
        digits, guard, rng, anchors, feats, per_anchor=12, who="confined-3", prefix=300
    )
    assert first is not None, "never flagged"
    print("first flag", first, "fidelity anchors, first 300 rows", fid_anchors, fid_rows)
    assert fid_rows - fid_anchors < 0.02, (first, fid_anchors, fid_rows)
