"""Round 16 of the theft defence (issue 20): on pixels, a consumer's dominant features may be a defect patch
of up to a quarter of the sensor (``Confined(wide=True)``: 13-16 of digits' 64 pixels, keyed), not only 5-7.

A camera with a 10-pixel defect patch in the ink area, sending each scene three times with 1-3 of the
patch's pixels re-measured (+ N(0, 0.4 x the pixel's spread)), steps the same ten pixels off anchor after
anchor; round 13's discount held only its 5-7 most touched pixels, so the fan-in rule called it a
feature-major prober (cold review attack20i, round 15: 15 of 15 streams flagged at 200-340 rows). The
attacker's counter, narrow probes confined to the model's 16 most important pixels off natural anchors, is
checked here: still flagged within 2,000 rows, and its copy gains less than 2 points over a copy from its
anchors alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.serve._theft_confined import Confined
from bastion.watermark.keys import WatermarkKey


def _guard(digits: Any, kit: Any, seed: int, wide: bool) -> Any:
    secret = np.random.default_rng(seed).bytes(32)
    guard = kit.digits_defence(digits, WatermarkKey.from_secret(secret), predict=True)
    steps = guard._steps
    assert steps is not None and steps.company is not None and steps.company.use_fan_in
    assert steps.confined is not None and 13 <= steps.confined.top <= 16
    if not wide:  # round 13's discount: the 5-7 most touched pixels
        steps.confined = Confined(secret, digits.x_train.shape[1])
        assert 5 <= steps.confined.top <= 7
    return guard


def _patch_camera(x: np.ndarray, rng: np.random.Generator, *, pixels: int, rows: int) -> np.ndarray:
    """A camera whose defect patch (``pixels`` of a 4x4 square in the ink area of the 8x8 sensor) is
    re-measured: each scene sent 3 times, every copy with 1-3 of the patch's pixels + N(0, 0.4 x spread)."""
    r0, c0 = rng.integers(1, 4, 2)
    patch = np.asarray([(r0 + i) * 8 + (c0 + j) for i in range(4) for j in range(4)][:pixels])
    sd = x.std(axis=0)
    out: list[np.ndarray] = []
    while len(out) < rows:
        scene = x[int(rng.integers(len(x)))]
        for _ in range(3):
            copy = scene.copy()
            f = rng.choice(patch, int(rng.integers(1, 4)), replace=False)
            copy[f] = np.clip(scene[f] + 0.4 * sd[f] * rng.standard_normal(len(f)), 0.0, 1.0)
            out.append(copy)
    return np.asarray(out[:rows], dtype=np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("wide", [True, False])
def test_a_camera_with_a_ten_pixel_defect_patch_is_not_flagged(digits: Any, kit: Any, wide: bool) -> None:
    guard = _guard(digits, kit, 21, wide)
    model = digits.adapter
    rng = np.random.default_rng(22)
    flagged, lost, total = [], 0, 0
    for s in range(3):
        rows = _patch_camera(digits.x_test, rng, pixels=10, rows=1500)
        first, changed = kit.serve_stream(model, guard, rows, (f"patch-{s}", f"addr:198.51.100.{60 + s}"))
        flagged.append(first)
        lost, total = lost + changed, total + len(rows)
    print("wide", wide, "first flags", flagged, "answers changed", lost, "of", total)
    if wide:
        assert flagged == [None] * 3 and lost / total <= 0.01, (flagged, lost)
    else:  # round 13's discount: the fan-in rule flagged it
        assert all(f is not None for f in flagged), (flagged, lost)


@pytest.mark.slow
def test_probes_confined_to_sixteen_important_pixels_are_flagged_and_gain_little(
    digits: Any, kit: Any
) -> None:
    """100 natural anchors, then narrow probes on 1-3 of the model's 16 most important pixels off them
    (7 per anchor, below the fan-out; inside the small-steps band; the thief knows the discount and its
    widest keyed size): flagged within 2,000 rows, and a copy from the first 600 rows answered cleanly
    agrees with the model less than 2 points more than a copy from its anchors alone."""
    guard = _guard(digits, kit, 23, True)
    rng = np.random.default_rng(24)
    x = digits.x_test
    anchors = x[rng.choice(len(x), 100, replace=False)]
    feats = kit.top_pixels(digits, anchors)[:16]
    first, fid_anchors, fid_rows = kit.confined_probes(
        digits, guard, rng, anchors, feats, per_anchor=7, who="confined-16", prefix=600
    )
    assert first is not None, "never flagged"
    print("first flag", first, "fidelity anchors, first 600 rows", fid_anchors, fid_rows)
    assert fid_rows - fid_anchors < 0.02, (first, fid_anchors, fid_rows)
