"""Round 7 of the theft defence (issue 20, fix20j): the newcomers' pool on breast_cancer.

A Sybil split of mixup rows (accounts of 29 rows, each below ``min_rows``) was flagged on breast_cancer
only at 455 attacker rows (bench key): its interpolations sit *closer* to the training rows than natural rows
do, so only the small-steps test sees them, and the pool counted 10 rows of every 29. Now a newcomer's rows
beyond those 10 feed the pool too while its own earlier rows lean out no more than natural rows do (the case
the shift and tail tests cannot see); an account whose rows lean out still adds 10 rows only, so a review
queue or one noisy client cannot flag the pool for the newcomers after it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bastion.serve._theft_pool import NEWCOMERS, POOL_ROWS, NewcomerQuota
from bastion.serve.reference import projection_scale
from bastion.serve.theft import TheftDefence
from bastion.watermark.api import ConsumerWatermark
from bastion.watermark.keys import WatermarkKey

BENCH = b"bench-deployment-secret-32-bytes"  # benchmarks/bench_extraction.py's key


@functools.lru_cache(maxsize=1)
def _breast_cancer() -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    from bastion.models.data import load_dataset

    d = load_dataset("breast_cancer", seed=0)
    return d, LogisticRegression(max_iter=2000).fit(d.x_train, d.y_train)


def _send(guard: Any, model: Any, x: np.ndarray, who: str, addr: str) -> tuple[bool, int]:
    flagged, mis = False, 0
    for start in range(0, len(x), 20):
        part = x[start : start + 20]
        ans = guard.respond(consumers=(who, addr), x=part, proba=model.predict_proba(part))
        flagged, mis = flagged or ans.flagged, mis + ans.misinformed
    return flagged, mis


def test_a_breast_cancer_sybil_of_interpolations_is_flagged_within_300_rows() -> None:
    """The bench's Sybil on breast_cancer: mixup of natural rows over accounts of 29 rows. Before: the pool
    was flagged after ~450 attacker rows (10 pooled per account); now within 300."""
    d, model = _breast_cancer()
    nf = d.x_train.shape[1]
    guard = TheftDefence(
        reference_x=d.x_train,
        reference_y=d.y_train,
        n_classes=2,
        secret=BENCH,
        watermark=ConsumerWatermark(
            BENCH, n_features=nf, n_classes=2, scale=projection_scale(d.x_train), cycles=0.5
        ),
    )
    rng = np.random.default_rng(3)
    pool = d.x_test.astype(np.float32)
    i, j = rng.integers(0, len(pool), (2, 600))
    lam = rng.uniform(0.0, 1.0, (600, 1)).astype(np.float32)
    x = lam * pool[i] + (1.0 - lam) * pool[j]
    first = None
    for a in range(0, 600 // 29):
        flagged, _ = _send(guard, model, x[a * 29 : (a + 1) * 29], f"sybil-{a}", f"addr:203.0.0.{a}")
        if flagged:
            first = (a + 1) * 29
            break
    assert first is not None and first <= 300, first
    assert any(f["consumer"] == NEWCOMERS for f in guard.flags())


def test_only_rows_after_natural_looking_ones_extend_the_quota() -> None:
    """The quota: ``POOL_ROWS`` rows, and up to ``max_rows`` for rows marked natural; repeats excluded."""
    quota = NewcomerQuota(max_identities=8, max_rows=39)
    counted = np.ones(30, dtype=bool)
    assert quota.take("a", counted).sum() == POOL_ROWS
    assert quota.take("a", counted).sum() == 0
    assert quota.take("b", counted, np.ones(30, dtype=bool)).sum() == 30
    assert quota.take("b", counted, np.ones(30, dtype=bool)).sum() == 9
    ext = np.zeros(30, dtype=bool)
    ext[20:] = True  # the first 20 rows are not natural-looking: 10 of them, then 10 more natural ones
    assert np.flatnonzero(quota.take("c", counted, ext)).tolist() == [*range(10), *range(20, 30)]


def test_review_queue_newcomers_do_not_flag_the_pool(digits: Any, kit: Any) -> None:
    """Newcomers who send only the lowest-margin natural rows (a review queue: shifted on their own) lean out
    from their first rows, so each still adds 10 rows to the pool only: 40 of them leave it unflagged (an
    extension for every unflagged newcomer flagged it after 4, and cost the 20 plain newcomers after them
    8 pp), and plain newcomers after them are answered as before."""
    guard = kit.digits_defence(digits, WatermarkKey.from_secret(np.random.default_rng(11).bytes(32)))
    proba = digits.adapter.predict_proba(digits.x_test)
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    hard = np.flatnonzero(margin <= np.quantile(margin, 0.25))
    rng = np.random.default_rng(5)
    for k in range(40):
        _send(
            guard, digits.adapter, digits.x_test[rng.choice(hard, 40)], f"jwt:queue{k}", f"addr:172.16.0.{k}"
        )
    assert all(f["consumer"] != NEWCOMERS for f in guard.flags())
    for k in range(5):
        x = digits.x_test[rng.integers(0, len(digits.x_test), 40)]
        assert _send(guard, digits.adapter, x, f"jwt:new{k}", f"addr:10.0.0.{k}") == (False, 0)
