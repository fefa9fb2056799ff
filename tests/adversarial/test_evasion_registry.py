"""The evasion ensemble's plug-in axis: every registered attack honours the member contract
(:mod:`bastion.adversarial.attacks.evasion.interface`), and a new attack plugs in through the registry."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.adversarial.attacks import evasion as ev
from bastion.errors import Conflict
from bastion.models import SklearnAdapter

SMALL = ev.EnsembleConfig(
    pgd_steps=5, apgd_steps=5, square_queries=40, hsj_iterations=2, hsj_examples=3, batch_size=None
)
BUILT_IN = ("pgd", "apgd-ce", "square", "hopskipjump")


def test_the_built_in_attacks_are_registered_in_the_ensembles_order() -> None:
    names = [m.name for m in ev.ensemble_attacks()]
    assert names[: len(BUILT_IN)] == list(BUILT_IN)
    assert {m.name for m in ev.ensemble_attacks() if m.white_box} >= {"pgd", "apgd-ce"}


@pytest.mark.parametrize("member", ev.ensemble_attacks(), ids=lambda m: m.name)
def test_every_member_honours_the_contract(member: ev.EnsembleMember, digits_model, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:12].astype(np.float32), eval_set[1][:12]
    before = x.copy()
    kwargs = {"eps": 0.1, "norm": "inf", "config": SMALL}
    run = member.run(digits_model, x, y, seed=7, **kwargs)
    assert run is not None, f"{member.name} should run on a white-box L-inf target"
    np.testing.assert_array_equal(x, before)  # never modifies the caller's inputs
    rows = np.arange(len(x)) if run.rows is None else run.rows
    assert run.x_adv.dtype == np.float32 and run.x_adv.shape == x[rows].shape
    assert (run.queries is None) == member.white_box  # black-box members report what they spent
    again = member.run(digits_model, x, y, seed=7, **kwargs)
    assert again is not None
    np.testing.assert_array_equal(run.x_adv, again.x_adv)  # deterministic for a seed
    # Disabled by its configuration, a member does not run.
    off = ev.EnsembleConfig(pgd_steps=0, apgd_steps=0, square_queries=0, hsj_iterations=0, hsj_examples=0)
    assert member.run(digits_model, x, y, seed=7, eps=0.1, norm="inf", config=off) is None


def test_white_box_members_are_skipped_on_a_model_without_gradients(digits) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=200).fit(digits.x_train, digits.y_train)
    model = SklearnAdapter(clf)
    result = ev.evaluate_robustness(model, digits.x_test[:20], digits.y_test[:20], eps=0.1, config=SMALL)
    assert set(result.per_attack) == {"square", "hopskipjump"}


def _noise_member(cheat: float) -> ev.EnsembleMember:
    """A plug-in attack: a signed random step of ``cheat · eps`` (cheat > 1 leaves the ε-ball)."""

    def run(model, x, y, *, eps, norm, config, seed):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(seed)
        step = cheat * eps * np.sign(rng.standard_normal(x.shape))
        return ev.AttackRun(x_adv=np.clip(x + step, 0.0, 1.0).astype(np.float32))

    return ev.EnsembleMember(name="noise", run=run, white_box=False, seed_offset=9)


def test_a_new_attack_plugs_in_and_is_held_to_the_budget(digits_model, eval_set) -> None:  # type: ignore[no-untyped-def]
    x, y = eval_set[0][:40], eval_set[1][:40]
    only = ev.EnsembleConfig(pgd_steps=0, apgd_steps=0, square_queries=0, hsj_iterations=0, hsj_examples=0)
    ev.register_attack(_noise_member(cheat=1.0))
    try:
        with pytest.raises(Conflict):
            ev.register_attack(_noise_member(cheat=1.0))
        within = ev.evaluate_robustness(digits_model, x, y, eps=0.5, config=only)
        assert set(within.per_attack) == {"noise"}
        assert within.robust_accuracy < within.clean_accuracy  # a 0.5 random step fools some digits
    finally:
        ev.unregister_attack("noise")
    # An attack that leaves the ε-ball is not believed: its examples still count as robust.
    ev.register_attack(_noise_member(cheat=3.0))
    try:
        outside = ev.evaluate_robustness(digits_model, x, y, eps=0.2, config=only)
        assert outside.robust_accuracy == outside.clean_accuracy
    finally:
        ev.unregister_attack("noise")
    assert "noise" not in {m.name for m in ev.ensemble_attacks()}
