"""Round 12 of the theft defence (issue 20, fix20z): on tabular rows, narrow steps confined to a consumer's
few dominant features are no evidence (``_theft_confined``). A clinic that re-sends a patient's last record
with one or two of the same three lab fields re-measured at 0.3 x the field's spread (fields the model
leans on, as a clinic's monitored values are) was flagged by the small-steps test: its narrow steps move the
answer more than random placements of them (the round-11 code; ``StepTest.confined = None`` now). The
attacker's counter, probes confined to the model's three most important features off natural seeds, is
measured here: what its copy gains over one from the seeds alone (the discount is safe where that is small).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.serve.theft import DefendedModel, build_defence
from bastion.watermark.keys import WatermarkKey


@pytest.fixture(scope="module")
def clinic_model() -> dict[str, Any]:
    import torch

    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    torch.set_num_threads(1)
    d = load_dataset("breast_cancer", seed=0)
    victim = mlp_shadow_trainer(
        input_shape=(d.x_train.shape[1],), n_classes=2, hidden=(64,), epochs=30, batch_size=64, lr=3e-3
    )(d.x_train, d.y_train, 0)
    x = np.asarray(d.x_test, dtype=np.float32)
    sd = x.std(axis=0)
    p0 = victim.predict_proba(x)[:, 1]
    eye = np.eye(x.shape[1], dtype=np.float32)
    pull = [np.abs(victim.predict_proba(x + 0.3 * sd[f] * eye[f])[:, 1] - p0).mean() for f in range(len(sd))]
    return {"data": d, "victim": victim, "x": x, "important": np.argsort(pull)[::-1]}


def _guard(m: dict[str, Any], seed: int, confined: bool) -> Any:
    d = m["data"]
    guard = build_defence(
        key=WatermarkKey.from_secret(np.random.default_rng(seed).bytes(32)),
        reference_x=d.x_train,
        reference_y=d.y_train,
        n_classes=2,
        center=0.0,
        predict=m["victim"].predict_proba,
    )
    assert guard._steps is not None
    if not confined:
        guard._steps.confined = None  # the round-11 behaviour
    return guard


@pytest.mark.slow
@pytest.mark.parametrize("confined", [True, False])
def test_a_clinic_re_measuring_important_fields_at_0_3_sd_is_not_flagged(
    clinic_model: dict[str, Any], confined: bool, kit: Any
) -> None:
    m = clinic_model
    victim = m["victim"]
    guard = _guard(m, 1, confined)
    served = DefendedModel(victim, guard, consumers=("clinic-r12", "addr:198.51.100.12"))
    rows = kit.clinic_stream(m["x"], np.random.default_rng(1), m["important"][1:4], sigma=0.3, rows=1000)
    lost = 0
    for start in range(0, len(rows), 10):
        p = np.asarray(victim.predict_proba(rows[start : start + 10]))
        lost += int(
            (np.asarray(served.predict_proba(rows[start : start + 10])).argmax(1) != p.argmax(1)).sum()
        )
    if confined:
        assert served.first_flag is None and lost / len(rows) <= 0.01, (served.first_flag, lost)
    else:  # round 11: flagged by the small-steps test (770 rows in)
        assert served.first_flag is not None, lost


@pytest.mark.slow
def test_probes_confined_to_three_important_features_gain_little(clinic_model: dict[str, Any]) -> None:
    """20 natural seeds (10 per class), then narrow probes on 1-3 of the model's three most important
    features off them (inside the small-steps band): whether or not the defence flags them, a copy from the
    seeds and the probes (answered cleanly: the most such an attacker gets) agrees with the victim less than
    2 points more than a copy from the seeds alone."""
    from bastion.adversarial.attacks.extraction import _train_surrogate

    m = clinic_model
    d, victim, x = m["data"], m["victim"], m["x"]
    guard = _guard(m, 2, True)
    rng = np.random.default_rng(5)
    seeds = x[np.concatenate([rng.choice(np.flatnonzero(d.y_test == c), 10, replace=False) for c in (0, 1)])]
    feats = m["important"][:3]
    rows = [*seeds]
    while len(rows) < 1000:
        step = np.zeros(x.shape[1], dtype=np.float32)
        f = rng.choice(feats, int(rng.integers(1, 4)), replace=False)
        step[f] = rng.standard_normal(len(f))
        step *= rng.uniform(guard._resend_tau, guard._near_tau) / np.linalg.norm(step)
        rows.append(seeds[int(rng.integers(len(seeds)))] + step)
    xs = np.asarray(rows, dtype=np.float32)
    served = DefendedModel(victim, guard, consumers=("narrow-3", "addr:198.51.100.13"))
    for start in range(0, len(xs), 10):
        served.predict_proba(xs[start : start + 10])
    if served.first_flag is not None and served.first_flag <= 300:
        return  # (flagged in time: nothing to bound)
    ref = victim.predict(d.x_train)
    fid = []
    for part in (seeds, xs):
        copy = _train_surrogate(
            part,
            victim.predict_proba(part),
            victim=victim,
            label_only=False,
            hidden=(128,),
            steps=600,
            seed=103,
            clip=None,
        )
        fid.append(float((copy.predict(d.x_train) == ref).mean()))
    print("first flag", served.first_flag, "fidelity seeds, seeds + probes", fid)
    assert fid[1] - fid[0] < 0.02, (served.first_flag, fid)


def _synthetic_confined(m: dict[str, Any], guard: Any, rng: np.random.Generator, rows: int) -> np.ndarray:
    """attack20f (round 12): 20 anchors with each feature from another natural row (fewer than min_rows),
    then narrow steps of 1-3 of 5 fixed features off them, inside the small-steps band, shuffled."""
    x = m["x"]
    nf = x.shape[1]
    anchors = np.stack([x[rng.integers(len(x), size=nf), np.arange(nf)] for _ in range(20)])
    feats = rng.choice(nf, 5, replace=False)
    band = 0.5 * (guard._resend_tau + guard._near_tau)
    steps = []
    while len(steps) < rows - len(anchors):
        a = anchors[len(steps) % len(anchors)]
        k = int(rng.integers(1, 4))
        step = np.zeros(nf)
        step[rng.choice(feats, k, replace=False)] = rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.0, k)
        steps.append(a + band * rng.uniform(0.6, 1.0) * step / np.linalg.norm(step))
    return np.concatenate([anchors, rng.permutation(np.asarray(steps))]).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("gate", [True, False])
def test_confined_steps_off_a_few_synthetic_anchors_are_still_judged(
    clinic_model: dict[str, Any], gate: bool
) -> None:
    """The confinement discount waits for the consumer's first min_rows counted rows: without that wait, 20
    synthetic anchors and then steps confined to 5 features were all re-sends to the detector, the stream
    never reached min_rows of counted rows and was never judged (attack20f: 0 of 9 keys flagged in 2,000 rows,
    copies 0.94-0.99; flagged at 340-500 before the discount and again with the wait)."""
    m = clinic_model
    guard = _guard(m, 3, True)
    if not gate:
        guard._steps.confined_after = 0  # fix20z's first version
    xs = _synthetic_confined(m, guard, np.random.default_rng(7), 1000)
    served = DefendedModel(m["victim"], guard, consumers=("synconf", "addr:198.51.100.14"))
    for start in range(0, len(xs), 20):
        served.predict_proba(xs[start : start + 20])
    if gate:
        assert served.first_flag is not None, "never judged"
    else:
        assert served.first_flag is None
