"""Round 10 of the theft defence (issue 20, fix20t): rows in the hull of a consumer's own rows that are no
mixtures (:mod:`bastion.serve._theft_segment`), the round-9 review's benign false flags F3 and F4.

F3: a client sending a slowly changing scene with interpolated frames (frame-rate up-conversion: the midpoint
of two neighbouring frames) was flagged by the mixtures test in every stream, and a mixtures flag is strong
(every answer misinformed). F4: an image re-sent at gains ``g1, g2, g3`` lies on the segment between its two
other gains. Both are ordinary now; a mixer that chains its mixes, or mixes its seeds, is still flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve._theft_segment import ordinary
from bastion.watermark.keys import WatermarkKey


def _guard(digits: Any, kit: Any, seed: int) -> Any:
    return kit.digits_defence(digits, WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)))


def _video(x: np.ndarray, rng: np.random.Generator, share: float, decode: bool) -> np.ndarray:
    """A scene walking over the natural rows (each frame the nearest one not shown yet, every row once), with
    a ``share`` of frames followed (decode order: sent after the next frame) or replaced (display order: sent
    in its place) by the midpoint of its two neighbours."""
    sq = np.einsum("ij,ij->i", x, x)
    dist = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    cur, left = int(rng.integers(len(x))), np.ones(len(x), dtype=bool)
    walk = []
    while left.any():
        left[cur] = False
        walk.append(x[cur])
        if left.any():
            cur = int(np.flatnonzero(left)[np.argmin(dist[cur, left])])
    frames: list[np.ndarray] = [walk[0]]
    for t in range(1, len(walk) - 1):
        if rng.uniform() < share:
            mid = 0.5 * (walk[t - 1] + walk[t + 1])
            frames += [walk[t + 1], mid] if decode else [mid]
        else:
            frames.append(walk[t])
    return np.asarray(frames, dtype=np.float32)


def _mixtures(guard: Any, who: str) -> tuple[Any, float]:
    s = guard._identities.get(who)
    return s.flag, guard._stats(s)[1].get("mixture_log10_p", 0.0)


def test_interpolated_video_frames_are_not_mixtures(digits: Any, kit: Any) -> None:
    """A scene over the natural rows with ~21 % of its frames interpolations of their neighbours, in decode
    and in display order: not flagged (before: flagged by the mixtures test, every answer misinformed)."""
    guard = _guard(digits, kit, 31)
    x = np.asarray(digits.x_test, dtype=np.float64)
    for decode in (True, False):
        who = f"jwt:video-{decode}"
        rows = _video(x, np.random.default_rng(5), 0.26, decode)
        assert kit.send_until_flag(guard, digits.adapter, rows, who) is None, who
        flag, log10_p = _mixtures(guard, who)
        assert flag is None and log10_p > -4, (who, log10_p)


def test_rescans_at_other_gains_are_not_mixtures(digits: Any, kit: Any) -> None:
    """Natural rows, a third of them sent at three gains about 0.6, 1.0 and 1.4 in a random order
    (``clip(g·x)``, at once or spread over the next rows; steps above the small-steps radius): the one between
    the other two gains is no mixture (before: flagged by the mixtures test)."""
    guard = _guard(digits, kit, 32)
    rng = np.random.default_rng(6)
    x = np.asarray(digits.x_test, dtype=np.float64)
    rows: list[np.ndarray] = []
    later: list[tuple[int, np.ndarray]] = []
    while len(rows) < 700:
        if later and later[0][0] <= len(rows):
            rows.append(later.pop(0)[1])
            continue
        r = x[rng.integers(len(x))]
        if rng.uniform() < 0.33:
            g = rng.permutation([0.6, 1.0, 1.4]) + rng.uniform(-0.05, 0.05, 3)
            rows.append(np.clip(g[0] * r, 0.0, 1.0))
            spread = len(rows) % 2 == 0  # half at once, half over the next 2-30 rows
            due = len(rows)
            for gi in g[1:]:
                due += int(rng.integers(2, 31)) if spread else 0
                later.append((due, np.clip(gi * r, 0.0, 1.0)))
            later.sort(key=lambda p: p[0])
        else:
            rows.append(r)
    assert kit.send_until_flag(guard, digits.adapter, np.asarray(rows), "jwt:gains") is None
    flag, log10_p = _mixtures(guard, "jwt:gains")
    assert flag is None and log10_p > -4, log10_p


def test_mixers_are_still_flagged(digits: Any, kit: Any) -> None:
    """A chained mixer (after 100 seed rows, each row the midpoint of its previous row, a mix itself, and a
    seed row: every one on a segment from its previous row) is flagged by the mixtures test, strongly."""
    rng = np.random.default_rng(7)
    x = np.asarray(digits.x_test, dtype=np.float64)
    idx = rng.permutation(len(x))
    seeds = x[idx[:100]]
    chain, cur = list(seeds), seeds[-1]
    while len(chain) < 500:
        cur = np.round((0.5 * cur + 0.5 * seeds[rng.integers(len(seeds))]) * 16) / 16
        if np.linalg.norm(np.asarray(chain) - cur, axis=1).min() > 0.7:
            chain.append(cur)
        else:
            cur = seeds[rng.integers(len(seeds))]
    guard = _guard(digits, kit, 33)
    first = kit.send_until_flag(guard, digits.adapter, np.asarray(chain), "jwt:chain")
    flag = guard._identities.get("jwt:chain").flag
    assert first is not None and first <= 300 and flag.reason == "mixtures", (first, flag)
    assert flag.score >= guard.policy.strong_score


def test_only_a_segment_from_a_non_mixture_row_is_ordinary() -> None:
    """The rule itself: a midpoint of the previous row and an earlier one is ordinary when the previous row
    is no mixture, not when it is; a Dirichlet mix of three earlier rows (none of them the previous) is a
    mixture; a row at another gain of an earlier one is ordinary."""
    rng = np.random.default_rng(0)
    rows = rng.uniform(0.0, 1.0, (6, 16))
    mid = 0.5 * (rows[5] + rows[1])
    tri = rng.dirichlet(np.ones(3)) @ rows[[0, 2, 3]]
    hist = np.vstack([rows, mid, tri, 0.8 * rows[2]])
    pos = np.array([6, 7, 8])
    r = np.array([0.01, 0.01, 0.01])
    out = ordinary(hist, pos, r, np.array([1.0, 0.01, 1.0]), 0.5, 6)
    assert out[0] == 0.5 and out[1] == 0.01 and out[2] == 0.5
    out = ordinary(hist, pos[:1], r[:1], np.array([0.01]), 0.5, 6)  # the previous row was a mixture
    assert out[0] == 0.01


def test_the_sensor_exemptions_follow_the_features() -> None:
    """Interpolated frames and gain copies are sensor behaviours: on standardised (tabular) rows the
    exemptions are off by default (there they only delayed a mixer: breast_cancer mixup 260-340 -> 280-380
    rows to the first flag), on intensity rows on; the policy overrides either way."""
    from bastion.serve._theft_mix import MixRule

    rng = np.random.default_rng(0)
    image = rng.random((300, 16))
    tabular = rng.standard_normal((300, 16))
    kw: dict[str, Any] = {"secret": b"k" * 32, "history": 512, "floor": 0.02}
    assert MixRule(reference=image, **kw).exempt
    assert not MixRule(reference=tabular, **kw).exempt
    assert MixRule(reference=tabular, sensor=True, **kw).exempt
    assert not MixRule(reference=image, sensor=False, **kw).exempt
    # on tabular rows a midpoint of the previous row and an earlier one counts as a mixture again
    rule = MixRule(reference=tabular, **kw)
    hist = np.zeros((512, 16), dtype=np.float32)
    hist[:3] = tabular[:3]
    hist[3] = 0.5 * (tabular[2] + tabular[0])
    assert rule.ratios(hist, 4, 1)[0] < rule.threshold
    assert MixRule(reference=tabular, sensor=True, **kw).ratios(hist, 4, 1)[0] >= rule.threshold


def test_a_mix_of_two_distant_rows_is_a_mixture() -> None:
    """Mixup of distant rows: ``0.7a + 0.3b`` has ``a`` among its nearest rows but not ``b``, so the hull of
    its nearest rows misses it (the hull alone let the bench's breast_cancer mixup run to 340 rows); the
    segment from ``a`` to ``b`` does not."""
    from bastion.serve._theft_mix import MixRule, hull_distance, pair_distance

    rng = np.random.default_rng(3)
    rows = rng.standard_normal((300, 30))
    rule = MixRule(reference=rng.standard_normal((600, 30)), secret=b"m" * 32, history=512, floor=0.02)
    hist = np.zeros((512, 30), dtype=np.float32)
    hist[:300] = rows
    hist[300] = 0.7 * rows[10] + 0.3 * rows[200]
    r = rule.ratios(hist, 301, 1)[0]
    assert r < rule.threshold
    # the hull of its nearest rows alone: not a mixture
    x = hist[300:301].astype(np.float64)
    d = np.linalg.norm(rows - x, axis=1)
    nb = rows[np.argsort(d)[: rule.k]][None]
    assert hull_distance(x, nb)[0] / d.min() > rule.threshold
    seg = pair_distance(x, nb, rows, np.ones((1, 300), dtype=bool), np.einsum("ij,ij->i", rows, rows))
    assert seg[0] / d.min() < 0.05
    # a natural row is no mixture of two rows
    hist[300] = rng.standard_normal(30)
    assert rule.ratios(hist, 301, 1)[0] >= rule.threshold
