"""Evasion attacks, torch-native and batched, plus an AutoAttack-style ensemble.

* :func:`fgsm` — Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.
* :func:`pgd` — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018;
  L∞ and L2, random restarts. Deviation: every iterate is checked and the first misclassified one is kept
  (never weaker than returning the last iterate, as ART does).
* :func:`apgd` — APGD-CE of Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", ICML 2020: momentum 0.75, step size halved at the checkpoints
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` when fewer than ρ = 0.75 of the steps since the last
  checkpoint raised the loss or when the best loss did not move.
* :func:`square` — Square Attack (L∞, score-based), Andriushchenko et al., ECCV 2020, with the margin loss on
  probabilities and AutoAttack's ``p`` schedule; a flat input whose length is a square is viewed as an image.
* :func:`hop_skip_jump` — HopSkipJumpAttack (label-only), Chen, Jordan & Wainwright, IEEE S&P 2020, L2 and L∞.
* :func:`evaluate_robustness` — the ensemble: each example counts as robust only if it survives every attack
  (worst case per example), with a gradient-masking warning when black-box attacks beat white-box ones.

One module per attack (``pgd``, ``apgd``, ``square``, ``hopskipjump``), each registering itself with the
ensemble (:mod:`~bastion.adversarial.attacks.evasion.registry`, where new attacks plug in);
:mod:`~bastion.adversarial.attacks.evasion.ensemble` runs them.

White-box attacks need a :class:`~bastion.models.adapters.TorchAdapter`; black-box ones take any
:class:`~bastion.models.interface.ModelAdapter`.
"""

from __future__ import annotations

# Import order is the ensemble's order: each attack module registers its member on import.
from bastion.adversarial.attacks.evasion._torch import _loss_and_grad, _mlp_ops, _project, _random_start

from bastion.adversarial.attacks.evasion.pgd import fgsm, pgd  # isort: skip
from bastion.adversarial.attacks.evasion.apgd import apgd  # isort: skip
from bastion.adversarial.attacks.evasion.square import square  # isort: skip
from bastion.adversarial.attacks.evasion.hopskipjump import hop_skip_jump  # isort: skip
from bastion.adversarial.attacks.evasion.ensemble import (  # isort: skip
    EnsembleResult,
    accuracy,
    accuracy_vs_eps,
    evaluate_robustness,
)
from bastion.adversarial.attacks.evasion.interface import AttackRun, BlackBoxResult, EnsembleConfig
from bastion.adversarial.attacks.evasion.registry import (
    EnsembleMember,
    ensemble_attacks,
    register_attack,
    unregister_attack,
)

__all__ = [
    "AttackRun",
    "BlackBoxResult",
    "EnsembleConfig",
    "EnsembleMember",
    "EnsembleResult",
    "accuracy",
    "accuracy_vs_eps",
    "apgd",
    "ensemble_attacks",
    "evaluate_robustness",
    "fgsm",
    "hop_skip_jump",
    "pgd",
    "register_attack",
    "square",
    "unregister_attack",
]
# Kept for the defences that reuse the projection and for tests of the MLP fast path.
_PRIVATE_REEXPORTS = (_loss_and_grad, _mlp_ops, _project, _random_start)
