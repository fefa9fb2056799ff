"""Round 11 of the theft defence (issue 20, fix20v): a consumer's narrow steps judged by their company across
anchors (feature-major probes: one feature stepped off many anchors) and along one line (a narrow step off an
anchor parallel to an earlier one off it, of another length: a Jacobian walk stepping its seeds again along
the same pixel). ``_theft_company``; ``StepTest.company = None`` turns both off (the round-10 behaviour).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.serve._theft_company import Company
from bastion.serve.theft import DefendedModel
from bastion.watermark.keys import WatermarkKey


def _defence(kit: Any, digits: Any, seed: int = 9, company: bool = True) -> Any:
    guard = kit.digits_defence(
        digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)), predict=True
    )
    if not company:
        guard._steps.company = None
    return guard


def _seeds(digits: Any, n: int = 100) -> np.ndarray:
    x = np.asarray(digits.x_test, dtype=np.float32)
    return x[np.random.default_rng(3).choice(len(x), n, replace=False)]


def _send(served: DefendedModel, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 20):
        served.predict_proba(rows[start : start + 20])


def _moved(x: np.ndarray, f: int, size: float) -> np.ndarray:
    y = x.copy()
    y[f] = y[f] + size if y[f] + size <= 1.0 else y[f] - size
    return y


def _feature_major(seeds: np.ndarray, size: float) -> np.ndarray:
    """Feature 0 of every seed, then feature 1, ... (the order of attack20c's feature-major probes)."""
    return np.asarray([_moved(s, f, size) for f in range(seeds.shape[1]) for s in seeds], dtype=np.float32)


@pytest.mark.parametrize("company", [True, False])
def test_feature_major_probes_are_flagged(kit: Any, digits: Any, company: bool) -> None:
    """100 seeds, then one pixel stepped off every seed in turn (inside the small-steps band), then the next
    pixel: each anchor sees one or two narrow steps (far below the fan-out), but each pixel is stepped off
    ever more anchors. With the fan-in: flagged within 300 rows; without it (round 10): not in 300 (the first
    pixels are the border's, where a step barely moves the answer: the narrow null alone never fires)."""
    guard = _defence(kit, digits, company=company)
    size = 0.5 * (guard._resend_tau + guard._near_tau)
    served = DefendedModel(digits.adapter, guard, consumers=("fm-prober", "addr:192.0.2.21"))
    seeds = _seeds(digits)
    _send(served, np.concatenate([seeds, _feature_major(seeds, size)[:200]]))
    if company:
        assert served.first_flag is not None and served.first_flag <= 300, served.first_flag
        assert guard.flags()[0]["reason"] == "small-steps"
    else:
        assert served.first_flag is None, served.first_flag


@pytest.mark.parametrize("company", [True, False])
def test_a_seed_stepped_again_along_the_same_pixel_is_a_line_probe(
    kit: Any, digits: Any, company: bool
) -> None:
    """100 seeds, each moved by one random pixel (no gradient: a null draw each), then each seed moved again
    along the same pixel by another size (what a Jacobian walk does when each round's surrogate agrees on a
    seed's top pixel). With the line rule the second steps are informative: flagged within 300 rows; without
    it, not."""
    guard = _defence(kit, digits, seed=10, company=company)
    lo, hi = guard._resend_tau, guard._near_tau
    served = DefendedModel(digits.adapter, guard, consumers=("liner", "addr:192.0.2.22"))
    rng = np.random.default_rng(7)
    seeds = _seeds(digits)
    feats = rng.integers(0, 64, len(seeds))
    first = np.asarray([_moved(s, f, 0.55 * hi) for s, f in zip(seeds, feats, strict=True)])
    # the second step: the same pixel, beyond the re-send radius of the first (and inside the band)
    second = np.asarray([_moved(s, f, 0.55 * hi + 1.2 * lo) for s, f in zip(seeds, feats, strict=True)])
    assert 0.55 * hi + 1.2 * lo < 0.95 * hi and 1.2 * lo > 0.1 * 0.55 * hi  # (another length: > 10 %)
    _send(served, np.concatenate([seeds, first, second]))
    if company:
        assert served.first_flag is not None and served.first_flag <= 300, served.first_flag
    else:
        assert served.first_flag is None, served.first_flag


def test_the_fan_in_counts_other_anchors_once_and_forgets() -> None:
    """Fan-in: a feature counts once per anchor (many steps off one anchor are the fan-out's business) and
    only the other anchors' steps in the consumer's window; consumers do not share a window."""
    c = Company(b"k" * 32, 8)
    step = np.zeros(64)
    step[10] = 0.3
    # many steps off one anchor touching feature 10: never crowded by themselves
    for j in range(40):
        s = step.copy()
        s[20 + j % 30] = 0.1
        assert not c.crowded(b"a", b"anchor-0", s)
    verdicts = [c.crowded(b"a", f"anchor-{i}".encode(), step) for i in range(1, c.fan_in + 3)]
    assert not any(verdicts[: c.fan_in - 1]) and all(verdicts[c.fan_in :]), verdicts
    assert not c.crowded(b"b", b"anchor-1", step)  # another consumer: its own window
    # the window moves on: steps on other features push feature 10 out
    for i in range(c.window):
        s = np.zeros(64)
        s[30 + i % 30] = 0.3
        c.crowded(b"a", f"other-{i}".encode(), s)
    assert not c.crowded(b"a", b"anchor-new", step)


def test_a_line_probe_is_a_multiple_on_the_same_support() -> None:
    """A multiple of an earlier step off the same anchor, entry by entry, of another length or the other
    way: a line probe. Two glitched copies of a glitched anchor share the anchor's glitch (and so point
    alike) but each adds its own: not one; nor are they one when both glitch the same pixel (each undoes the
    anchor's glitch by the same amount: no multiple). A step of about the same length: a near-duplicate."""
    c = Company(b"k" * 32, 8)

    def sketch(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        top = np.argsort(-np.abs(s))[:8]
        return top.astype(np.int32), s[top], float(s @ s)

    a = np.zeros(64)
    a[5] = 0.3
    assert c.line(2.0 * a, [sketch(a)]) and c.line(-0.5 * a, [sketch(a)])
    assert not c.line(1.05 * a, [sketch(a)])
    two = np.zeros(64)
    two[[9, 17]] = [0.2, -0.2]  # a gradient-sign step on two pixels, then twice as long
    assert c.line(2.0 * two, [sketch(two)]) and not c.line(2.0 * two, [sketch(a)])
    glitch = np.zeros(64)
    glitch[[5, 6, 7]] = [-0.5, 0.4, -0.45]  # the anchor's own glitch, undone by both copies
    s2, s3 = glitch.copy(), glitch.copy()
    s2[40], s3[41] = 0.1, 0.1  # each copy's new glitch
    assert abs(s2 @ s3) / (s2 @ s2) > 0.95  # nearly parallel ...
    assert not c.line(s3, [sketch(s2)])  # ... but not on one support
    s4 = glitch.copy()
    s4[40] = 0.3  # the same pixel as s2's glitch, another value: the same support, no multiple
    assert not c.line(s4, [sketch(s2)])
    wide = np.full(64, 0.01)
    wide[3] = 0.3
    assert not c.line(2.0 * wide, [sketch(wide)])  # a step wider than its sketch: not judged
