"""The audit's plug-in point: a family runner.

A runner is ``run(target, budget, seed, progress) -> SectionResult``: it measures one attack family against a
validated :class:`~bastion.adversarial.audit.types.AuditTarget` within the :class:`AuditBudget`, reports
progress as ``progress(family, fraction, message)``, is deterministic for a given ``seed``, never modifies the
target, and returns a :class:`SectionResult` whose ``family`` is its registered name and whose ``status`` is
``ok`` (graded) or ``skipped`` (with the reason), never raising for a target it cannot attack. The contract
every registered runner is tested against: ``tests/adversarial/test_audit_registry.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bastion.adversarial.audit.types import AuditBudget, AuditTarget, Progress, SectionResult


class FamilyRunner(Protocol):
    def __call__(self, t: AuditTarget, b: AuditBudget, seed: int, progress: Progress) -> SectionResult: ...


__all__ = ["FamilyRunner"]
