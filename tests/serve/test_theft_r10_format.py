"""Round 10 of the theft defence (issue 20): a flagged consumer cannot see its flag in the answers' format.

The round-9 cold review (F6) noticed that the flagged response rounded to 2 decimals while the consumer
role's output rule answers with 3: one answer told a thief it had been flagged, so it could stop there and
keep the answers it had. The flagged response now keeps the default consumer format (top-3, 3 decimals).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve.responses import truncate
from bastion.serve.theft import TheftPolicy
from bastion.watermark.keys import WatermarkKey


def _third_decimal_share(p: np.ndarray) -> float:
    """The share of non-zero answers whose third decimal is not zero."""
    v = p[p > 0]
    return float((np.abs(np.round(v * 100) - v * 100) > 1e-6).mean())


def test_flagged_answers_keep_the_consumer_format(kit: Any, digits: Any) -> None:
    assert (TheftPolicy().top_k, TheftPolicy().decimals) == (3, 3)
    guard = kit.digits_defence(digits, WatermarkKey.from_secret(np.random.default_rng(5).bytes(32)))
    rng = np.random.default_rng(0)
    flagged = []
    for _ in range(15):  # uniformly random rows: flagged within a few requests
        x = rng.random((20, 64), dtype=np.float32)
        ans = guard.respond(consumers=("jwt:t", "addr:10.7.7.7"), x=x, proba=digits.adapter.predict_proba(x))
        if ans.flagged:
            flagged.append(ans.proba)
    assert len(flagged) >= 10
    after = np.concatenate(flagged)
    natural = truncate(digits.adapter.predict_proba(digits.x_test[:300]), top_k=3, decimals=3)
    # what the gateway's consumer rule would answer unflagged: 3 decimals, top-3
    assert _third_decimal_share(natural) > 0.5
    assert _third_decimal_share(after) > 0.5  # (2 decimals: 0.0)
    assert ((after > 0).sum(axis=1) <= 3).all()
