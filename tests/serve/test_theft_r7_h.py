"""Round-7 review of the theft defence, finding F6 (issue 20): a Sybil split. A consumer is judged on its
own only from ``min_rows`` (40) distinct rows, so mixup queries spread over many accounts of 29 rows, each
from its own address, were never flagged nor misinformed. Newcomers are now also judged together (the
``pool:newcomers`` consumer, each newcomer's first rows): the Sybil's rows flag the pool, while natural
newcomers — and a single attacker, who is flagged on its own — do not."""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.serve._theft_pool import NEWCOMERS
from bastion.watermark.keys import WatermarkKey


def _key(seed: int) -> Any:
    return WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32))


def _send(guard: Any, digits: Any, x: np.ndarray, account: int, tag: str) -> tuple[bool, int]:
    """One account (own identity, own address) sends ``x`` in requests of 20 rows: (flagged, misinformed)."""
    flagged, mis = False, 0
    for start in range(0, len(x), 20):
        part = x[start : start + 20]
        ans = guard.respond(
            consumers=(f"jwt:{tag}{account}", f"addr:100.64.{account // 250}.{account % 250}"),
            x=part,
            proba=digits.adapter.predict_proba(part),
        )
        flagged, mis = flagged or ans.flagged, mis + ans.misinformed
    return flagged, mis


def _mixup(digits: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    pred = digits.adapter.predict(digits.x_test)
    seeds = digits.x_test[np.concatenate([rng.choice(np.flatnonzero(pred == c), 10) for c in range(10)])]
    i, j = rng.integers(0, len(seeds), (2, n))
    t = rng.uniform(0.0, 1.0, (n, 1))
    return np.clip(t * seeds[i] + (1.0 - t) * seeds[j], 0.0, 1.0).astype(np.float32)


def test_a_sybil_split_below_min_rows_is_flagged_and_misinformed(digits: Any, kit: Any) -> None:
    """F6: 40 accounts x 29 mixup rows. Before: no account flagged, no row misinformed. Now the pool is
    flagged within 300 pooled rows (10 per account: within 30 accounts) and most later rows are
    misinformed."""
    guard = kit.digits_defence(digits, _key(21))
    rng = np.random.default_rng(6)
    x = _mixup(digits, rng, 40 * 29)
    results = [_send(guard, digits, x[a * 29 : (a + 1) * 29], a, "sock") for a in range(40)]
    first = next((a for a, (flagged, _) in enumerate(results) if flagged), None)
    assert first is not None and first < 30, results
    assert any(f["consumer"] == NEWCOMERS for f in guard.flags())
    later = sum(mis for _, mis in results[first + 1 :])
    assert later >= 0.6 * 29 * (40 - first - 1), (first, later)


def test_natural_newcomers_and_a_single_attacker_leave_the_pool_unflagged(digits: Any, kit: Any) -> None:
    """50 natural newcomers starting one after another (the bench's benign streams are all newcomers) do not
    flag the pool; neither does one noisy attacker among them (it is flagged on its own; its first 10 rows
    are all the pool counts of it), so the newcomers after it are answered as before."""
    guard = kit.digits_defence(digits, _key(22))
    rng = np.random.default_rng(7)
    noise = rng.random((100, 64), dtype=np.float32)
    assert _send(guard, digits, noise, 999, "noisy")[0]
    for a in range(50):
        x = digits.x_test[rng.integers(0, len(digits.x_test), 40)]
        assert _send(guard, digits, x, a, "natural") == (False, 0), a
    assert [f["consumer"] for f in guard.flags()] == ["jwt:noisy999", "addr:100.64.3.249"]


def test_padding_each_account_with_resends_does_not_use_up_its_pool_rows(digits: Any, kit: Any) -> None:
    """Each account first re-sends one natural row 10 times with sensor noise (re-sends are not new to the
    pool), then sends mixup rows: the pool still counts 10 mixup rows of each account and is flagged."""
    guard = kit.digits_defence(digits, _key(23))
    rng = np.random.default_rng(8)
    x = _mixup(digits, rng, 40 * 19)
    flagged = []
    for a in range(40):
        row = digits.x_test[rng.integers(0, len(digits.x_test))]
        pad = np.clip(row + rng.normal(0.0, 0.005, (10, 64)), 0.0, 1.0).astype(np.float32)
        flagged.append(_send(guard, digits, np.concatenate([pad, x[a * 19 : (a + 1) * 19]]), a, "pad")[0])
    assert any(flagged[:30]), flagged


def test_a_copy_trained_on_many_small_accounts_names_the_newcomers_pool(digits: Any, kit: Any) -> None:
    """F6, attribution: natural rows over 50 accounts x 29 rows; no account has the 30 probes the score
    evidence tests, so the copy named nobody. A newcomer's answers carry the pool's keyed wave (its probes are
    the pool's), and the copy names ``pool:newcomers`` at p < 1e-6; an innocent copy names nobody."""
    from bastion.adversarial.attacks.membership import train_mlp

    key = _key(24)
    guard = kit.digits_defence(digits, key)
    rng = np.random.default_rng(9)
    for h in range(4):
        _send(guard, digits, digits.x_test[rng.integers(0, len(digits.x_test), 300)], 900 + h, "honest")
    x = digits.x_test[rng.integers(0, len(digits.x_test), 50 * 29)]
    answers = []
    for a in range(50):
        part = x[a * 29 : (a + 1) * 29]
        for start in range(0, len(part), 20):
            ans = guard.respond(
                consumers=(f"jwt:sock{a}", f"addr:100.64.0.{a}"),
                x=part[start : start + 20],
                proba=digits.adapter.predict_proba(part[start : start + 20]),
            )
            answers.append(ans.proba)
    soft = np.concatenate(answers).astype(np.float32)

    def copy_of(labels: np.ndarray, targets: np.ndarray) -> Any:
        import torch

        mod = train_mlp(
            x,
            labels,
            n_classes=10,
            hidden=(128,),
            epochs=20,
            batch_size=64,
            lr=3e-3,
            seed=0,
            soft_targets=targets,
        )

        def predict(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.softmax(mod(torch.from_numpy(np.asarray(z, np.float32))), 1).numpy()

        return predict

    evidence = guard.evidence(digits.adapter.predict_proba)
    stolen = evidence.attribute(key=key, predict_proba=copy_of(soft.argmax(1), soft))
    assert stolen.consumer == NEWCOMERS and stolen.p_value < 1e-6, stolen
    truth = np.eye(10, dtype=np.float32)[digits.adapter.predict(x)]
    innocent = evidence.attribute(key=key, predict_proba=copy_of(truth.argmax(1), truth))
    assert innocent.p_value > 1e-3, innocent
