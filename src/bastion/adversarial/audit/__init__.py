"""The audit runner: red-team one model across four attack families and grade the result.

:func:`run_audit` takes an :class:`AuditTarget` (the model, held-out data, optionally its training rows and a
way to train another model like it) and runs the families asked for:

* **evasion** — the AutoAttack-style ensemble at the reference ε (10 % of the input range, L∞), robust
  accuracy against ε, FGSM and PGD-L2, the gradient-masking check and, for white-box models with a known
  input range, the feature-squeezing detector against non-adaptive PGD and the adaptive BPDA attacker;
* **membership** — the loss-threshold baseline and LiRA (offline and online) on a balanced sample of members
  and non-members, plus the baseline against rounded outputs (output hardening);
* **extraction** — surrogate fidelity and accuracy against query budgets for each query strategy, and
  against a label-only (hardened) API;
* **poisoning** — a BadNets backdoor and a label flip injected into the training rows, the poisoned model
  retrained with the target's recipe, and the backdoor detectors (activation clustering, spectral signatures,
  STRIP on the training set and at inference).

One module per family (``evasion``, ``membership``, ``extraction``, ``poisoning``), each registering its
runner (:mod:`~bastion.adversarial.audit.registry`, where new families plug in); budgets and results in
:mod:`~bastion.adversarial.audit.types`; :mod:`~bastion.adversarial.audit.runner` runs and grades.

Grades (A best … F worst) per family follow the fixed thresholds of :mod:`bastion.adversarial.grading`, each
with an absolute floor; the overall grade is the worst family grade (an attacker takes the weakest path), and
an audit that did not measure every family grades ``incomplete``.
"""

from __future__ import annotations

# Each family module registers its runner on import.
from bastion.adversarial.audit import evasion, extraction, membership, poisoning  # noqa: F401
from bastion.adversarial.audit.demo import demo_target
from bastion.adversarial.audit.registry import families, register_family, unregister_family
from bastion.adversarial.audit.runner import run_audit
from bastion.adversarial.audit.types import BUDGETS, AuditBudget, AuditReport, AuditTarget, SectionResult
from bastion.adversarial.grading import FAMILIES, GRADES, INCOMPLETE, worst

__all__ = [
    "BUDGETS",
    "FAMILIES",
    "GRADES",
    "INCOMPLETE",
    "AuditBudget",
    "AuditReport",
    "AuditTarget",
    "SectionResult",
    "demo_target",
    "families",
    "register_family",
    "run_audit",
    "unregister_family",
    "worst",
]
