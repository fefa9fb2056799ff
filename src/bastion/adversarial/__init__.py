"""Adversarial resilience: attacks, defences and the audit that runs them.

* ``bastion.adversarial.attacks`` — ``evasion`` (FGSM, PGD, APGD-CE, Square, HopSkipJump, ensemble),
  ``membership`` (threshold baseline, LiRA), ``extraction`` (:func:`extract`), ``poisoning`` (BadNets,
  label flip).
* ``bastion.adversarial.defenses`` — ``adversarial_training`` (PGD-AT), ``feature_squeezing`` (+ BPDA),
  ``output`` (hardening), ``backdoor`` (activation clustering, spectral signatures, STRIP).
* :func:`run_audit` with :class:`AuditTarget` — the audit (``bastion.report.audit.write_audit`` writes its
  JSON + HTML); ``policy`` turns thresholds into a CI gate; ``loading`` opens models and data safely.

Torch is imported lazily by the attacks that need it.
"""

from __future__ import annotations

from bastion.adversarial.attacks.extraction import extract
from bastion.adversarial.audit import BUDGETS, FAMILIES, AuditReport, AuditTarget, demo_target, run_audit
from bastion.adversarial.policy import check_policy, load_policy

__all__ = [
    "BUDGETS",
    "FAMILIES",
    "AuditReport",
    "AuditTarget",
    "check_policy",
    "demo_target",
    "extract",
    "load_policy",
    "run_audit",
]
