"""Round-6 cold review of the theft defence, finding F2 (issue 20): benign clients that re-send each natural
input a few times with sensor noise (re-scans, video frames, retries through a lossy pipeline) were flagged
by the small-steps test at their 40th row and then lost ~96 pp to misinformation. A near-duplicate of a row
the detector already counted is now a re-send for the small-steps test; the guard below checks that an
attacker cannot chain such near-duplicates into a walk that the test no longer sees."""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.watermark.keys import WatermarkKey


def _key(seed: int) -> Any:
    return WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32))


def _ask(
    guard: Any, digits: Any, x: np.ndarray, consumers: tuple[str, ...], batch: int = 20
) -> tuple[int, Any]:
    """Send ``x`` in requests of ``batch`` rows: (rows sent at the first flag or -1, answers)."""
    first, out = -1, []
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        ans = guard.respond(consumers=consumers, x=part, proba=digits.adapter.predict_proba(part))
        if ans.flagged and first < 0:
            first = start + len(part)
        out.append(ans.proba)
    return first, np.concatenate(out)


def test_noisy_resends_of_natural_rows_are_not_flagged(digits: Any, kit: Any) -> None:
    guard = kit.digits_defence(digits, _key(11))
    rng = np.random.default_rng(4)
    plain = defended = total = 0
    for s in range(6):
        idx = rng.integers(0, len(digits.x_test), 200)
        x = np.repeat(digits.x_test[idx], 3, axis=0)
        x = np.clip(x + rng.normal(0.0, 0.01, x.shape), 0.0, 1.0).astype(np.float32)
        y = np.repeat(digits.y_test[idx], 3)
        first, out = _ask(guard, digits, x, (f"jwt:rescan-{s}", f"addr:10.9.0.{s}"))
        assert first < 0, (s, first, guard.flags())
        plain += int((digits.adapter.predict(x) == y).sum())
        defended += int((out.argmax(1) == y).sum())
        total += len(y)
    assert guard.flags() == []
    assert (plain - defended) / total <= 0.01


def test_near_duplicates_do_not_hide_a_walk_in_small_steps(digits: Any, kit: Any) -> None:
    """Each step is a re-send of the previous row (0.1 < the digits re-send radius, ~0.15) but the walk
    drifts from the last row the detector counted: every few steps are counted, and trip the small-steps
    test (were re-sends anchored on any earlier row, this walk would never be counted at all)."""
    guard = kit.digits_defence(digits, _key(12))
    rng = np.random.default_rng(5)
    seeds = digits.x_test[rng.choice(len(digits.x_test), 20, replace=False)]
    rows = []
    for seed in seeds:
        cur = seed.astype(np.float64)
        for _ in range(15):
            d = rng.standard_normal(cur.shape)
            cur = np.clip(cur + 0.1 * d / np.linalg.norm(d), 0.0, 1.0)  # < the re-send radius
            rows.append(cur.copy())
    first, _ = _ask(guard, digits, np.asarray(rows, dtype=np.float32), ("jwt:walker", "addr:10.9.1.1"))
    assert 0 < first <= 300
