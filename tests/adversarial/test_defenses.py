"""Each defence against its attack, with and without, by a stated margin."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.adversarial.attacks import evasion as ev
from bastion.adversarial.attacks import poisoning as po
from bastion.adversarial.attacks.extraction import extract
from bastion.adversarial.defenses import backdoor as bd
from bastion.adversarial.defenses import feature_squeezing as fs
from bastion.adversarial.defenses.adversarial_training import adversarial_training
from bastion.adversarial.defenses.output import HardenedAdapter
from bastion.errors import InvalidInput
from bastion.models import TorchAdapter


@pytest.mark.slow
def test_pgd_adversarial_training_raises_robust_accuracy(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    from bastion.adversarial.attacks.membership import train_mlp

    x, y = digits.x_test, digits.y_test
    plain = TorchAdapter(
        train_mlp(digits.x_train, digits.y_train, n_classes=10, hidden=(128,), epochs=30, lr=3e-3, seed=0),
        input_shape=(64,),
        n_classes=10,
        clip_values=(0.0, 1.0),
    )
    before = ev.accuracy(plain, ev.pgd(plain, x, y, eps=0.1, steps=20, seed=3), y)
    net = train_mlp(digits.x_train, digits.y_train, n_classes=10, hidden=(128,), epochs=5, lr=3e-3, seed=0)
    robust = TorchAdapter(net, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    # Madry-style: train at a slightly larger ε (0.12) than the one evaluated (0.1)
    adversarial_training(
        model=robust, x=digits.x_train, y=digits.y_train, eps=0.12, steps=7, epochs=30, lr=2e-3
    )
    after = ev.accuracy(robust, ev.pgd(robust, x, y, eps=0.1, steps=20, seed=3), y)
    assert after >= before + 0.30, (before, after)
    assert ev.accuracy(robust, x, y) > 0.85  # still a useful classifier


def test_feature_squeezing_detects_pgd_and_reports_adaptive(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    det = fs.calibrate_feature_squeezing(
        model=digits_model, clean_x=digits.x_test[:200], bit_depth=2, median_size=0, target_fpr=0.05
    )
    x, y = digits.x_test[200:], digits.y_test[200:]
    res = fs.evaluate_feature_squeezing(det, clean_x=x, x=x, y=y, eps=0.1, steps=20, adaptive_steps=30)
    assert res.clean_fpr <= 0.08  # calibrated at 5 % on a separate clean split
    assert res.pgd_success > 50
    assert res.pgd_detected >= 0.80
    # the adaptive (BPDA) attacker does better than the non-adaptive one: the figure the report states
    n_correct = int((digits_model.predict(x) == y).sum())
    non_adaptive_evasion = res.pgd_success * (1 - res.pgd_detected) / n_correct
    assert res.adaptive_evasion_rate > non_adaptive_evasion
    with pytest.raises(InvalidInput, match="squeezer"):
        fs.calibrate_feature_squeezing(model=digits_model, clean_x=x, bit_depth=0, median_size=0)


def test_median_squeezer_on_image_view(digits_model) -> None:  # type: ignore[no-untyped-def]
    import torch

    x = torch.zeros(1, 64)
    x[0, 27] = 1.0  # a single bright pixel is removed by a 2×2 median
    assert float(fs._median(x, 2, (1, 8, 8)).max()) == 0.0
    q = fs._bits(torch.tensor([0.1, 0.4, 0.6, 0.9]), 1, (0.0, 1.0), straight_through=False)
    assert q.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_output_hardening_against_extraction(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    kw = {
        "strategy": "knockoff",
        "budgets": (60,),
        "data": digits.x_train,
        "eval_x": digits.x_test,
        "eval_y": digits.y_test,
        "seed": 0,
    }
    full = extract(victim=digits_model, **kw)
    labels = extract(victim=HardenedAdapter(digits_model, label_only=True), **kw)
    assert labels.label_only and not full.label_only
    assert labels.points[0].fidelity <= full.points[0].fidelity - 0.02
    top1 = HardenedAdapter(digits_model, top_k=1).predict_proba(digits.x_test[:5])
    assert ((top1 > 0).sum(axis=1) == 1).all()
    rounded = HardenedAdapter(digits_model, decimals=1).predict_proba(digits.x_test[:20])
    np.testing.assert_allclose(rounded.sum(axis=1), 1.0, atol=1e-6)
    assert not hasattr(HardenedAdapter(digits_model, decimals=2), "logits")
    with pytest.raises(InvalidInput, match="choose at least one"):
        HardenedAdapter(digits_model)


@pytest.fixture(scope="module")
def backdoored(digits, digits_trainer):  # type: ignore[no-untyped-def]
    poisoned = po.badnets(digits.x_train, digits.y_train, rate=0.1, target=0, seed=0)
    model = digits_trainer(poisoned.x, poisoned.y, 0)
    return poisoned, model


def test_badnets_backdoor_works(digits, backdoored) -> None:  # type: ignore[no-untyped-def]
    poisoned, model = backdoored
    assert poisoned.poisoned.mean() == pytest.approx(0.1, abs=0.002)
    assert (poisoned.y[poisoned.poisoned] == 0).all()
    assert ev.accuracy(model, digits.x_test, digits.y_test) > 0.9
    other = digits.y_test != 0
    assert (model.predict(poisoned.trigger.apply(digits.x_test[other])) == 0).mean() > 0.9


def test_backdoor_detection_on_training_set(digits, backdoored) -> None:  # type: ignore[no-untyped-def]
    poisoned, model = backdoored
    # threshold at 3 % false alarms on held-out clean data: training rows sit a little lower in entropy
    strip = bd.strip_training_set(
        model=model, x=poisoned.x, y=poisoned.y, clean_x=digits.x_test, target_frr=0.03
    )
    strip = strip.with_truth(poisoned.poisoned)
    assert strip.tpr is not None and strip.fpr is not None
    assert strip.tpr >= 0.90 and strip.fpr <= 0.05, strip.to_dict()
    ac = bd.activation_clustering(model, poisoned.x, poisoned.y).with_truth(poisoned.poisoned)
    assert ac.flagged_classes == (0,)
    assert ac.tpr is not None and ac.fpr is not None and ac.tpr >= 0.75 and ac.fpr <= 0.05, ac.to_dict()
    spectral = bd.spectral_signatures(model, poisoned.x, poisoned.y, expected_rate=0.1).with_truth(
        poisoned.poisoned
    )
    assert spectral.flagged.mean() == pytest.approx(
        0.15, abs=0.02
    )  # removes 1.5 × the expected rate per class


def test_activation_clustering_quiet_on_clean_model(digits, digits_model) -> None:  # type: ignore[no-untyped-def]
    ac = bd.activation_clustering(digits_model, digits.x_train, digits.y_train)
    assert ac.flagged.mean() <= 0.05


def test_strip_at_inference(digits, backdoored) -> None:  # type: ignore[no-untyped-def]
    poisoned, model = backdoored
    detector = bd.calibrate_strip(model=model, clean_x=digits.x_test[:200], target_frr=0.05)
    rest_x, rest_y = digits.x_test[200:], digits.y_test[200:]
    triggered = poisoned.trigger.apply(rest_x[rest_y != 0])
    assert detector.detect(triggered).mean() >= 0.9
    assert detector.detect(rest_x).mean() <= 0.1
    with pytest.raises(InvalidInput, match="at least"):
        bd.calibrate_strip(model=model, clean_x=digits.x_test[:10])


def test_poisoning_helpers(digits) -> None:  # type: ignore[no-untyped-def]
    flipped = po.label_flip(digits.x_train, digits.y_train, rate=0.2, n_classes=10, seed=1)
    changed = flipped.y != digits.y_train
    np.testing.assert_array_equal(changed, flipped.poisoned)
    targeted = po.label_flip(digits.x_train, digits.y_train, rate=0.1, n_classes=10, target=3)
    assert (targeted.y[targeted.poisoned] == 3).all()
    trig = po.badnets_trigger((64,), size=3)
    assert trig.mask.sum() == 9 and trig.mask.reshape(8, 8)[5:, 5:].all()
    with pytest.raises(InvalidInput, match="rate"):
        po.badnets(digits.x_train, digits.y_train, rate=1.5)
    with pytest.raises(InvalidInput, match="non-empty"):
        po.badnets(digits.x_train[:0], digits.y_train[:0])
    with pytest.raises(InvalidInput, match="trigger shape"):
        trig.apply(np.zeros((2, 10), np.float32))
