"""Round 19: the mixtures test's shortcuts (:mod:`bastion.serve._theft_mix`) change no decision.

``r`` (a row's hull distance over its nearest distance) is only ever compared with the keyed threshold, so a
row whose certified lower bound already settles that comparison skips the simplex solve, before it or part-way
through it; the segment distance is one matrix product instead of two contractions. Each shortcut is checked
here against the plain computation: the bound never exceeds the distance, a row that is solved gets the very
same value, and the decisions over natural, mixing, random and interpolating streams are the same.
"""

from __future__ import annotations

import numpy as np

from bastion.serve import _theft_mix
from bastion.serve._theft_mix import MixRule, _simplex, hull_distance, hull_lower_bound, pair_distance
from bastion.watermark.keys import WatermarkKey


def _plain_simplex(v: np.ndarray) -> np.ndarray:
    k = v.shape[1]
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1.0
    rho = (u - css / np.arange(1, k + 1) > 0).sum(axis=1)
    theta = css[np.arange(len(v)), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


def _plain_hull(x: np.ndarray, nbrs: np.ndarray, steps: int = 40) -> np.ndarray:
    d = nbrs - x[:, None, :]
    g = np.einsum("mkf,mjf->mkj", d, d)
    lip = np.maximum(np.linalg.eigvalsh(g)[:, -1], 1e-12)
    w = np.full(g.shape[:2], 1.0 / g.shape[1])
    y, t = w.copy(), 1.0
    for _ in range(steps):
        w_next = _plain_simplex(y - np.matmul(g, y[:, :, None])[:, :, 0] / lip[:, None])
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = w_next + (t - 1.0) / t_next * (w_next - w)
        w, t = w_next, t_next
    return np.sqrt(np.maximum(np.einsum("mk,mkj,mj->m", w, g, w), 0.0))


def _cases(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for i in range(n):
        m, k, f = int(rng.integers(1, 40)), int(rng.integers(2, 11)), int(rng.choice([8, 30, 64]))
        nbrs = rng.normal(size=(m, k, f)) * rng.choice([1e-3, 1.0, 30.0])
        kind = i % 4
        if kind == 0:  # inside the hull
            x = np.einsum("mk,mkf->mf", rng.dirichlet(np.ones(k), size=m), nbrs)
        elif kind == 1:  # on a segment between two neighbours
            lam = rng.uniform(0, 1, size=(m, 1))
            x = lam * nbrs[:, 0] + (1 - lam) * nbrs[:, 1]
        elif kind == 2:  # repeated neighbours (fewer earlier rows than k), rounded to a grid
            nbrs[:, k // 2 :] = nbrs[:, :1]
            nbrs = np.round(nbrs, 1)
            x = np.round(rng.normal(size=(m, f)), 1)
        else:
            x = rng.normal(size=(m, f)) * 3.0
        out.append((x, nbrs))
    return out


def test_simplex_and_solve_are_the_plain_computation_to_the_bit() -> None:
    rng = np.random.default_rng(19)
    for x, nbrs in _cases(rng, 300):
        v = rng.normal(size=(len(x), nbrs.shape[1]))
        assert np.array_equal(_simplex(v), _plain_simplex(v))
        assert np.array_equal(hull_distance(x, nbrs), _plain_hull(x, nbrs))


def test_lower_bounds_never_exceed_the_distance_and_solved_rows_are_exact() -> None:
    rng = np.random.default_rng(20)
    stopped = solved = certified = 0
    for x, nbrs in _cases(rng, 120):
        exact = _plain_hull(x, nbrs, steps=600)  # an upper bound itself, within rounding of the distance
        full = _plain_hull(x, nbrs)
        lower = hull_lower_bound(x, nbrs)
        assert np.all(lower <= exact * (1 + 1e-7) + 1e-12)
        certified += int((lower > 0).sum())
        enough = full * rng.uniform(0.5, 1.5, size=len(x))
        got = hull_distance(x, nbrs, enough=enough)
        same = got == full
        assert np.all(got[~same] >= enough[~same]) and np.all(got[~same] <= exact[~same] * (1 + 1e-7) + 1e-12)
        stopped += int((~same).sum())
        solved += int(same.sum())
    assert stopped > 40 and solved > 40 and certified > 40  # both paths taken


def test_segment_distance_matches_the_contractions() -> None:
    rng = np.random.default_rng(21)
    for _ in range(50):
        m, k, n, f = int(rng.integers(1, 20)), int(rng.integers(2, 11)), int(rng.integers(3, 300)), 64
        rows = rng.uniform(0, 1, size=(n, f))
        x, nbrs = rng.uniform(0, 1, size=(m, f)), rows[rng.integers(0, n, size=(m, k))]
        earlier = rng.uniform(size=(m, n)) < 0.8
        sq = np.einsum("ij,ij->i", rows, rows)
        u = x[:, None, :] - nbrs
        length = np.linalg.norm(u, axis=2)
        unit = u / np.maximum(length, 1e-12)[:, :, None]
        t = np.einsum("mkf,nf->mkn", unit, rows) - np.einsum("mkf,mkf->mk", unit, nbrs)[:, :, None]
        span2 = np.maximum(sq + np.einsum("mkf,mkf->mk", nbrs, nbrs)[:, :, None] - 2 * (nbrs @ rows.T), 1e-24)
        d = length[:, :, None] * np.sqrt(np.maximum(span2 - t * t, 0.0)) / np.sqrt(span2)
        ok = earlier[:, None, :] & (t > 0) & (length[:, :, None] * t <= span2) & (length[:, :, None] > 0)
        want = np.where(ok, d, np.inf).min(axis=(1, 2))
        got = pair_distance(x, nbrs, rows, earlier, sq)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12) and np.array_equal(np.isinf(got), np.isinf(want))


def _streams(rng: np.random.Generator, seeds: np.ndarray) -> list[np.ndarray]:
    lo, hi = seeds.min(0), seeds.max(0)
    out = []
    for kind in range(4):
        rows: list[np.ndarray] = []
        base = seeds[rng.integers(0, len(seeds), 400)]
        for i in range(400):
            if kind == 0 or (kind == 1 and i < 20):
                x = base[i]
            elif kind == 1:  # mixup of the consumer's own earlier rows
                lam = rng.uniform(0.2, 0.8)
                x = lam * rows[int(rng.integers(0, i))] + (1 - lam) * rows[int(rng.integers(0, i))]
            elif kind == 2:
                x = rng.uniform(lo, hi)
            else:  # interpolated frames
                j = i // 3
                x = base[j] + (base[j + 1] - base[j]) * (i % 3) / 3
            rows.append(x)
        out.append(np.stack(rows).astype(np.float32))
    return out


def test_the_shortcuts_change_no_decision() -> None:
    """Natural, mixing, random and interpolating streams: every row's ``r < threshold`` is the same with and
    without the shortcuts, and a row below the threshold has the very same ``r``."""
    from bastion.models.data import load_dataset

    digits = load_dataset("digits", seed=0)
    rng = np.random.default_rng(22)
    secret = WatermarkKey.from_secret(bytes(range(32))).secret
    rule = MixRule(secret=secret, reference=digits.x_train, history=400, floor=0.01)
    plain = MixRule(secret=secret, reference=digits.x_train, history=400, floor=0.01)
    plain.calibrated = False  # no shortcut (the same threshold: calibration never took one)
    assert rule.threshold == plain.threshold and rule.base == plain.base
    below = compared = 0
    for stream in _streams(rng, digits.x_test):
        ring = np.zeros((400, stream.shape[1]), dtype=np.float32)
        for n in range(10, len(stream) + 1, 10):
            ring[(n - 10) % 400 : (n - 10) % 400 + 10] = stream[n - 10 : n]
            fast, slow = rule.ratios(ring, n, 10), plain.ratios(ring, n, 10)
            assert np.array_equal(fast < rule.threshold, slow < plain.threshold)
            low = slow < plain.threshold
            assert np.array_equal(fast[low], slow[low])
            below += int(low.sum())
            compared += len(fast)
    assert below > 200 and compared == 1600
    assert _theft_mix._CHECKS  # the part-way stops are on
