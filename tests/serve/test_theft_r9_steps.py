"""Round 9 of the theft defence (issue 20, fix20q): noisier re-sends are not Jacobian walks.

A customer that re-sends each image three times with sensor noise of 2 % of the range (or at another bit
depth) lands between the re-send radius and the small-steps radius, and the small-steps test flagged it
(attack20b F2: 50/50 streams, -85 pp). A small step now counts only if it is informative: it moves the served
model's answer much more than keyed random-sign steps of the same sizes do (``_theft_steps``; needs
``predict``). A Jacobian walker's steps follow a surrogate's gradient and still count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bastion.errors import InvalidInput
from bastion.serve.theft import DefendedModel, TheftPolicy, build_defence
from bastion.watermark.keys import WatermarkKey


def _defence(digits: Any, predict: bool) -> Any:
    return build_defence(
        key=WatermarkKey.from_secret(np.random.default_rng(9).bytes(32)),
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
        center=0.5,
        predict=digits.adapter.predict_proba if predict else None,
    )


def _noisy_resender(
    digits: Any, guard: Any, sigma: float, images: int = 100, copies: int = 3, who: str = "jwt:scanner"
) -> tuple[bool, float]:
    """``images`` test images, each sent ``copies`` times with fresh noise (sd ``sigma``, clipped to [0, 1]);
    returns whether the stream was flagged and the share of its answers that keep the model's label."""
    rng = np.random.default_rng(4)
    x_test = np.asarray(digits.x_test, dtype=np.float32)
    rows = np.repeat(x_test[rng.choice(len(x_test), images, replace=False)], copies, axis=0)
    rows = np.clip(rows + rng.normal(0.0, sigma, rows.shape), 0.0, 1.0).astype(np.float32)
    flagged, kept = False, 0
    for start in range(0, len(rows), 20):
        part = rows[start : start + 20]
        p = digits.adapter.predict_proba(part)
        ans = guard.respond(consumers=(who, f"addr:{who}"), x=part, proba=p)
        flagged |= ans.flagged
        kept += int((ans.proba.argmax(axis=1) == p.argmax(axis=1)).sum())
    return flagged, kept / len(rows)


def test_a_noisier_resender_is_not_flagged(digits: Any) -> None:
    """Before (no step test, what the defence does without ``predict``): the 2 %-noise re-sender is flagged
    on small steps and loses most answers. After: not flagged, every answer keeps its label."""
    old = _defence(digits, predict=False)
    flagged, kept = _noisy_resender(digits, old, 0.02)
    assert flagged and old.flags()[0]["reason"] == "small-steps" and kept < 0.9

    guard = _defence(digits, predict=True)
    flagged, kept = _noisy_resender(digits, guard, 0.02)
    assert not flagged and kept > 0.97, (guard.flags(), kept)
    # the same scene many times (a camera on a static scene): each copy is a fresh chance of a false
    # "informative" verdict, and the small-steps share counts every copy tested
    flagged, kept = _noisy_resender(digits, guard, 0.02, images=10, copies=20, who="jwt:camera")
    assert not flagged and kept > 0.97, (guard.flags(), kept)


def test_a_jacobian_walker_is_still_flagged(digits: Any) -> None:
    """``jacobian-random`` (10 seeds a class) against a defence with the step test: flagged within 300."""
    from bastion.adversarial.attacks.extraction import extract

    guard = _defence(digits, predict=True)
    served = DefendedModel(digits.adapter, guard, consumers=("mallory", "addr:192.0.2.7"))
    extract(
        victim=served,
        strategy="jacobian-random",
        budgets=[300],
        data=digits.x_test,
        eval_x=digits.x_test[:50],
        eval_y=digits.y_test[:50],
        clip_values=(0.0, 1.0),
        jacobian_seed_size=100,
        seed=3,
        train_steps=90,
    )
    assert served.first_flag is not None and served.first_flag <= 300, served.first_flag


def test_gradient_steps_are_informative_and_sign_flipped_ones_are_not(digits: Any) -> None:
    """The test itself: steps along the served model's own input gradient sign count; the same steps with
    their signs shuffled (no direction, same sizes) mostly do not."""
    import torch

    guard = _defence(digits, predict=True)
    steps = guard._steps
    x = np.asarray(digits.x_test[:60], dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    label = torch.from_numpy(digits.adapter.predict(x).astype(np.int64))
    logits = digits.module(xt)
    (grad,) = torch.autograd.grad(logits.gather(1, label[:, None]).sum(), xt)
    step = -0.04 * np.sign(grad.numpy())  # |step| 0.32: inside the band (re-send 0.15, small steps 0.58)
    assert guard._resend_tau < float(np.linalg.norm(step[0])) < guard._near_tau
    aligned = steps.informative(x + step, x)
    shuffled = steps.informative(x + step * np.random.default_rng(1).choice([-1.0, 1.0], step.shape), x)
    assert aligned.mean() > 0.7 and shuffled.mean() < 0.1, (aligned.mean(), shuffled.mean())
    assert (steps.informative(x + step, x) == aligned).all()  # keyed: the same verdicts again


def test_step_policy_is_validated() -> None:
    with pytest.raises(InvalidInput):
        TheftPolicy(step_k=1)
    with pytest.raises(InvalidInput):
        TheftPolicy(step_fpr=0.0)
