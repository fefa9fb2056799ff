"""Adversarial resilience: attacks, defences and the audit that runs them.

* attacks — evasion (:func:`fgsm`, :func:`pgd`, :func:`apgd`, :func:`square`, :func:`hop_skip_jump` and
  the :func:`evaluate_robustness` ensemble, where new attacks plug in with :func:`register_attack`),
  membership (:func:`threshold_attack`, :func:`lira`), extraction (:func:`extract`), poisoning
  (:func:`badnets`, :func:`label_flip`);
* defences — :func:`adversarial_training` (PGD-AT), feature squeezing (+ the adaptive :func:`bpda_attack`),
  :class:`HardenedAdapter` (output hardening), backdoor detectors (:func:`activation_clustering`,
  :func:`spectral_signatures`, :class:`StripDetector`);
* :func:`run_audit` with :class:`AuditTarget` — the audit (``bastion.report.audit.write_audit`` writes its
  JSON + HTML; new families plug in with :func:`register_family`); :func:`check_policy` turns thresholds
  into a CI gate; :func:`open_model` / :func:`load_data` open models and data safely.

Torch is imported lazily by the attacks that need it.
"""

from __future__ import annotations

from bastion.adversarial.attacks.evasion import (
    EnsembleConfig,
    EnsembleMember,
    EnsembleResult,
    apgd,
    evaluate_robustness,
    fgsm,
    hop_skip_jump,
    pgd,
    register_attack,
    square,
)
from bastion.adversarial.attacks.extraction import extract
from bastion.adversarial.attacks.membership import lira, threshold_attack
from bastion.adversarial.attacks.poisoning import badnets, label_flip
from bastion.adversarial.audit import (
    BUDGETS,
    FAMILIES,
    AuditReport,
    AuditTarget,
    demo_target,
    register_family,
    run_audit,
)
from bastion.adversarial.defenses.adversarial_training import adversarial_training
from bastion.adversarial.defenses.backdoor import StripDetector, activation_clustering, spectral_signatures
from bastion.adversarial.defenses.feature_squeezing import FeatureSqueezingDetector, bpda_attack
from bastion.adversarial.defenses.output import HardenedAdapter
from bastion.adversarial.loading import load_data, open_model
from bastion.adversarial.policy import check_policy, load_policy

__all__ = [
    "BUDGETS",
    "FAMILIES",
    "AuditReport",
    "AuditTarget",
    "EnsembleConfig",
    "EnsembleMember",
    "EnsembleResult",
    "FeatureSqueezingDetector",
    "HardenedAdapter",
    "StripDetector",
    "activation_clustering",
    "adversarial_training",
    "apgd",
    "badnets",
    "bpda_attack",
    "check_policy",
    "demo_target",
    "evaluate_robustness",
    "extract",
    "fgsm",
    "hop_skip_jump",
    "label_flip",
    "lira",
    "load_data",
    "load_policy",
    "open_model",
    "pgd",
    "register_attack",
    "register_family",
    "run_audit",
    "spectral_signatures",
    "square",
    "threshold_attack",
]
