"""The theft defence's evidence is a function of the key and of each consumer's own requests (issue 20 round
8, fix20l): the same in two processes with different ``PYTHONHASHSEED`` (nothing keyed uses Python's salted
``hash()`` or a set's order), and a consumer's kept probes do not depend on other consumers' traffic (the
reservoir's draws were one generator shared by every consumer, so two gateway workers, or the same requests
interleaved differently, kept different probes). The probe counts that varied between runs of the
``verify --url`` test (1,055-1,064) came from the identity's id, a fresh uuid per test project: label marks
are keyed per consumer, and a label-marked answer is not a score probe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np

SCENARIO = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from bastion.serve.theft import TheftPolicy, build_defence
    from bastion.watermark.keys import WatermarkKey

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 8))
    y = np.repeat(np.arange(3), 100)
    x = centres[y] + rng.normal(0, 1, (300, 8))

    def proba(rows):
        logits = -((rows[:, None, :] - centres[None]) ** 2).sum(-1) / 4
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    key = WatermarkKey.from_secret(b"theft-r8-l-determinism-key-32-b!")
    g = build_defence(key=key, reference_x=x, reference_y=y, n_classes=3,
                      policy=TheftPolicy(keep_queries=40), clock=lambda: 0.0)
    h = hashlib.sha256()
    q = np.random.default_rng(1)
    for step in range(16):
        for who in ("alice", "bob"):
            rows = centres[q.integers(0, 3, 20)] + q.normal(0, 1, (20, 8))
            h.update(g.respond(consumers=(who, "addr:10.0.0.1"), x=rows, proba=proba(rows)).proba.tobytes())
    for c in sorted(g.consumers()):
        h.update(c.encode() + g.queries(c).tobytes())
    ev = g.label_evidence()
    for c in sorted(ev.consumers):
        for part in ev.consumers[c]:
            h.update(np.ascontiguousarray(part).tobytes())
    print(h.hexdigest())
    """
)


def _run(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", SCENARIO], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip()


def test_answers_and_evidence_are_the_same_under_two_hash_seeds() -> None:
    first, second = _run("1"), _run("4242")
    assert len(first) == 64 and first == second


def _defence() -> Any:
    from bastion.serve.theft import TheftPolicy, build_defence
    from bastion.watermark.keys import WatermarkKey

    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (200, 8)), rng.integers(0, 2, 200)
    key = WatermarkKey.from_secret(b"theft-r8-l-reservoir-key-32-byte")
    return build_defence(
        key=key, reference_x=x, reference_y=y, n_classes=2, policy=TheftPolicy(keep_queries=30)
    )


def test_a_consumers_kept_probes_do_not_depend_on_other_consumers_traffic() -> None:
    """alice's 300 rows beyond a 30-probe reservoir: the same probes kept whether or not bob's requests
    come in between (before, every consumer's draws came from one shared generator)."""
    rng = np.random.default_rng(5)
    rows = rng.normal(0, 1, (300, 8))
    other = rng.normal(0, 1, (300, 8))
    p = np.full((20, 2), 0.5) + np.array([0.2, -0.2])
    kept = []
    for interleave in (False, True):
        g = _defence()
        for i in range(0, 300, 20):
            g.respond(consumers=("alice",), x=rows[i : i + 20], proba=p)
            if interleave:
                g.respond(consumers=("bob",), x=other[i : i + 20], proba=p)
        kept.append(g.queries("alice"))
    assert len(kept[0]) == 30 and np.array_equal(kept[0], kept[1])
