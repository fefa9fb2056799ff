"""Data protection: PII discovery and classification, tokenization (AES-SIV), FF1, masking, k-anonymity.

Pure entry points (no project needed): :func:`scan_file`, :func:`protect_file` (with :class:`ScopeKeys`),
:func:`assess_risk`, :func:`load_policy`. As a project member (permission checks, catalog, lineage, audit):
:mod:`bastion.data.service` — ``scan``, ``protect``, ``reveal``.
Generated test data: :mod:`bastion.data.synth`.
"""

from __future__ import annotations

from bastion.data.entities import Action, Label
from bastion.data.policy import Policy, load_policy
from bastion.data.protect import ProtectResult, protect_file, reveal_text, reveal_value
from bastion.data.risk import RiskReport, assess_risk
from bastion.data.scan import ColumnReport, EntityEvidence, ScanReport, scan_file
from bastion.data.tokens import ScopeKeys

__all__ = [
    "Action",
    "ColumnReport",
    "EntityEvidence",
    "Label",
    "Policy",
    "ProtectResult",
    "RiskReport",
    "ScanReport",
    "ScopeKeys",
    "assess_risk",
    "load_policy",
    "protect_file",
    "reveal_text",
    "reveal_value",
    "scan_file",
]
