"""Round-7 fix of the theft defence, attack20 finding F2 (issue 20): a human-in-the-loop client that sends
only its lowest-margin natural rows (a review queue) is flagged by the shift test and, being flagged, had
every answer misinformed (digits: -54 pp). A keyed naturalness filter (bastion.serve._theft_natural), fitted
on the reference rows against interpolations and signed steps made from them, now lets a flagged consumer's
rows that it calls natural keep the model's argmax; interpolations stay misinformed. It is used only where it
separates held-out rows (digits yes, breast_cancer no)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from bastion.serve._theft_natural import LazyNatural, build_natural
from bastion.watermark.keys import WatermarkKey


def _key(seed: int) -> Any:
    return WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32))


def _ask(guard: Any, digits: Any, x: np.ndarray, consumers: tuple[str, ...]) -> np.ndarray:
    out = []
    for start in range(0, len(x), 20):
        part = x[start : start + 20]
        out.append(guard.respond(consumers=consumers, x=part, proba=digits.adapter.predict_proba(part)).proba)
    return np.concatenate(out)


def _mixups(x: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    a, b = rng.integers(0, len(x), n), rng.integers(0, len(x), n)
    lam = rng.uniform(0.25, 0.75, (n, 1))
    return (lam * x[a] + (1.0 - lam) * x[b]).astype(np.float32)


def test_a_review_queue_of_low_margin_natural_rows_keeps_its_answers(digits: Any, kit: Any) -> None:
    guard = kit.digits_defence(digits, _key(31))
    rng = np.random.default_rng(3)
    p = digits.adapter.predict_proba(digits.x_test)
    top2 = np.sort(p, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    hard = digits.x_test[margin <= np.quantile(margin, 0.25)]  # the queue: the lowest-margin quarter
    x = hard[rng.integers(0, len(hard), 600)]
    who = ("jwt:reviewer", "addr:10.9.0.1")
    out = _ask(guard, digits, x, who)
    flags = {f["consumer"]: f for f in guard.flags()}
    # round 8 (test_theft_r8_k): the queue is no longer flagged at all; where it would be (a consumer flagged
    # below strong on other rows), its natural rows keep their answers: tested there
    assert flags.get("jwt:reviewer", {"score": 0.0})["score"] < guard.policy.strong_score
    agree = float((out.argmax(1) == digits.adapter.predict(x)).mean())
    assert agree >= 0.9, agree  # was 0.70: rows beyond the flagged percentile misinformed once flagged
    mix = _mixups(digits.x_test, rng, 200)
    out = _ask(guard, digits, mix, who)  # the same consumer's interpolations are misinformed
    # (once flagged: since round 8 the queue leaves it unflagged, so its first interpolations are answered)
    assert (out[100:].argmax(1) == digits.adapter.predict(mix[100:])).mean() <= 0.4


def test_the_filter_is_keyed_and_used_only_where_it_separates(digits: Any) -> None:
    x, y = digits.x_train, digits.adapter.predict(digits.x_train)
    one = build_natural(x=x, y=y, secret=b"a" * 32, fpr=0.02, min_catch=0.5, max_rows=600)
    two = build_natural(x=x, y=y, secret=b"b" * 32, fpr=0.02, min_catch=0.5, max_rows=600)
    assert one is not None and two is not None
    assert one.threshold != two.threshold
    # breast_cancer: interpolations of its 30 correlated measurements look natural: the filter is not used
    bc = load_breast_cancer()
    xb = (bc.data - bc.data.min(0)) / np.ptp(bc.data, axis=0)
    assert build_natural(x=xb, y=bc.target, secret=b"a" * 32, fpr=0.02, min_catch=0.8) is None
    off = LazyNatural(x=x, y=y, secret=b"a" * 32, fpr=0.0, min_catch=0.8)  # policy natural_fpr = 0: off
    assert off.get() is None and not off.natural(x[:5]).any()
