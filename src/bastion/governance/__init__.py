"""Governance (layer 6): one inventory, one policy and one gate over the evidence the other pillars produce.

* :func:`inventory` — every model and dataset version (and the gateway) with signature, scan, audit, ε,
  watermark and lineage evidence, verified as it is read.
* :func:`check_versions` — the ``[policy.<env>]`` rules of ``bastion.toml`` on registry versions;
  :func:`enforce` raises :class:`~bastion.errors.PolicyViolation` (the promote gate).
* :func:`review_code` — ML-specific code and notebook rules plus bandit, merged into one SARIF log.
* :func:`build_bom` — a CycloneDX 1.6 ML-BOM with a model card; :func:`threat_model` — threats mapped to
  MITRE ATLAS 5.6.0, OWASP ML Top 10 (2023) and LLM Top 10 (2025), with each control's measured status.
"""

from __future__ import annotations

from bastion.governance._checkov import CheckovEngine
from bastion.governance.code import review_code
from bastion.governance.findings import CheckReport, Issue, Rule, merge, to_sarif
from bastion.governance.inventory import InventoryEntry, inventory
from bastion.governance.policy import Policy, check_versions, enforce, load_policy

__all__ = [
    "CheckReport",
    "CheckovEngine",
    "InventoryEntry",
    "Issue",
    "Policy",
    "Rule",
    "check_versions",
    "enforce",
    "inventory",
    "load_policy",
    "merge",
    "review_code",
    "to_sarif",
]
