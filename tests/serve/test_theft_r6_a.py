"""Round-6 cold review of the theft defence (issue 20, attack20 F1 and the flag score): misinformation that a
consumer cannot invert, and a strong flag that does not wear off while the flag lives.

F1: misinformation used to move every row's probabilities through one keyed class permutation per consumer;
a consumer that knew the labels of ~10 rows learnt it (ask them before and after being flagged) and inverted
every later answer. Now a misinformed answer is a keyed decoy's: the model's sorted probabilities on a keyed
class ranking of the query's cell (a keyed grid over random projections), so its label does not depend on
the model's label at all (it is the model's 1/C of the time) and there is nothing to learn and invert.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve.responses import decoy_cells, misinform
from bastion.serve.theft import TheftDefence, TheftPolicy, build_defence
from bastion.watermark.keys import WatermarkKey

SECRET = b"r6-a-deployment-secret-32-bytes!"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _defence(digits: Any, clock: Clock | None = None) -> TheftDefence:
    return build_defence(
        key=WatermarkKey.from_secret(SECRET),
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
        center=0.5,
        clock=clock or Clock(),
    )


def _ask(d: TheftDefence, digits: Any, x: np.ndarray, consumers: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    out, last = [], None
    for start in range(0, len(x), 20):
        part = np.asarray(x[start : start + 20], dtype=np.float32)
        last = d.respond(consumers=consumers, x=part, proba=digits.adapter.predict_proba(part))
        out.append(last.proba)
    return np.concatenate(out), last


def test_misinformed_labels_carry_no_information_about_the_models_label() -> None:
    rng = np.random.default_rng(0)
    for c in (10, 2):
        p = rng.dirichlet(np.ones(c) * 0.3, 4000)
        cells = np.arange(4000, dtype=np.uint64)  # one query per cell
        out = misinform(p, secret=SECRET, cells=cells)
        # the model's confidence, put on the cell's decoy ranking
        assert np.allclose(np.sort(out, axis=1), np.sort(p, axis=1))
        # the decoy's label is the model's 1/C of the time (the old derangement: never, so "not this class"
        # was known; with two classes the answer was simply the other one)
        same = float((out.argmax(1) == p.argmax(1)).mean())
        assert abs(same - 1.0 / c) < 0.04, (c, same)
        # ... and it does not depend on the model's answer at all: another answer, same cells, same label
        other = misinform(rng.dirichlet(np.ones(c) * 0.3, 4000), secret=SECRET, cells=cells)
        assert np.array_equal(other.argmax(1), out.argmax(1))
        # a mapping learnt from known rows (the attacker's seeds) does not invert any other row
        learnt = np.zeros(c, dtype=np.int64)
        seen, truth = out[:200].argmax(1), p[:200].argmax(1)
        for k in range(c):
            shown, counts = np.unique(seen[truth == k], return_counts=True)
            learnt[shown[counts.argmax()]] = k
        recovered = learnt[out[200:].argmax(1)]
        assert float((recovered == p[200:].argmax(1)).mean()) < 1.0 / c + 0.05


def test_decoy_cells_are_keyed_and_local() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (500, 64))
    cells = decoy_cells(x, secret=SECRET, scale=1.0, width=1.0)
    assert np.array_equal(cells, decoy_cells(x, secret=SECRET, scale=1.0, width=1.0))
    assert 20 <= len(np.unique(cells)) < 500  # a few dozen cells over the data, not one per row
    near = decoy_cells(x + rng.normal(0, 0.005, x.shape), secret=SECRET, scale=1.0, width=1.0)
    assert float((near == cells).mean()) > 0.95  # a small step stays in its cell: the decoy is consistent
    other = decoy_cells(x, secret=b"another-deployment-secret-32byte", scale=1.0, width=1.0)
    same_a = cells[:, None] == cells[None, :]
    same_b = other[:, None] == other[None, :]
    assert float((same_a == same_b).mean()) < 0.99  # another key cuts the space differently


def test_a_flagged_thief_cannot_invert_its_misinformed_answers(digits: Any) -> None:
    """The reviewer's attack_invert.py in miniature: 1 known row per class, flagged on noise, seeds asked
    again to read the mapping, then interpolations of the seeds inverted with it."""
    d = _defence(digits)
    consumers = ("jwt:mallory", "addr:203.0.113.7")
    rng = np.random.default_rng(5)
    pred = digits.adapter.predict(digits.x_test)
    seeds = digits.x_test[[int(np.flatnonzero(pred == c)[0]) for c in range(10)]]
    before, _ = _ask(d, digits, seeds, consumers)
    _, flagged = _ask(d, digits, rng.uniform(0, 1, (60, 64)), consumers)
    assert flagged.flagged and flagged.score >= d.policy.strong_score
    after, _ = _ask(d, digits, seeds, consumers)
    learnt = np.arange(10)  # answer class -> model class, as read from the seeds
    learnt[after.argmax(1)] = before.argmax(1)
    i, j = rng.integers(0, 10, (2, 400))
    t = rng.uniform(0, 1, (400, 1))
    q = np.clip(t * seeds[i] + (1 - t) * seeds[j] + rng.normal(0, 0.05, (400, 64)), 0, 1)
    answers, last = _ask(d, digits, q, consumers)
    truth = digits.adapter.predict(np.asarray(q, dtype=np.float32))
    inverted = float((learnt[answers.argmax(1)] == truth).mean())
    # what the seeds alone tell the attacker: each query's nearest seed's label
    dist = ((q[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
    prior = float((before.argmax(1)[dist.argmin(axis=1)] == truth).mean())
    assert last.flagged and last.misinformed == 20
    # the per-consumer permutation: 0.99 (every answer inverted); the decoy: below the seeds' own prior
    # (only a query in a seed's cell, where the seed's label is the attacker's guess anyway, inverts)
    assert inverted < min(0.5, prior), (inverted, prior)


def test_a_strong_flag_keeps_its_peak_score_until_it_decays(digits: Any) -> None:
    """A flag's score used to be overwritten by each window's score: once a flagged thief's last 200 rows
    looked clean, 'strong' was gone and only some rows were misinformed. The peak stays while the flag lives;
    the flag itself still decays ``flag_ttl_s`` after its last evidence."""
    clock = Clock()
    d = _defence(digits, clock)
    consumers = ("jwt:mallory", "addr:203.0.113.7")
    _, hit = _ask(d, digits, np.random.default_rng(1).uniform(0, 1, (80, 64)), consumers)
    assert hit.flagged and hit.score >= d.policy.strong_score
    peak = hit.score
    natural = digits.x_test[:300]  # a clean window (distinct natural rows) after the flag
    clock.t += 60
    _, later = _ask(d, digits, natural, consumers)
    assert later.flagged and later.score >= peak and later.misinformed == len(natural[-20:])
    clock.t += TheftPolicy().flag_ttl_s + 1
    _, decayed = _ask(d, digits, digits.x_test[300:320], consumers)
    assert not decayed.flagged and decayed.misinformed == 0
