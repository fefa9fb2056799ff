"""Grades: absolute floors per family, poisoning attack and detection apart, incomplete audits."""

from __future__ import annotations

import pytest

from bastion.adversarial import grading as g
from bastion.adversarial.audit import AuditReport, SectionResult
from bastion.adversarial.policy import check_policy, parse_policy


def test_evasion_has_an_absolute_floor() -> None:
    # the review's case: 30 % clean, 25 % robust keeps 83 % of the accuracy but is near chance (10 classes)
    assert g.grade_evasion(clean=0.30, robust=0.25, n_classes=10) == "D"
    assert g.grade_evasion(clean=0.98, robust=0.90, n_classes=10) == "A"
    assert g.grade_evasion(clean=0.976, robust=0.44, n_classes=10) == "C"  # the digits demo MLP
    # at chance on a binary task nothing is left, whatever the ratio
    assert g.grade_evasion(clean=0.52, robust=0.50, n_classes=2) == "F"
    assert g.grade_evasion(clean=0.98, robust=0.95, n_classes=10, masking=True) == "C"
    assert g.above_chance(0.1, 10) == pytest.approx(0.0)


def test_membership_and_extraction_are_absolute() -> None:
    assert g.grade_membership(auc=0.51, tpr_at_1_fpr=0.01) == "A"
    assert g.grade_membership(auc=0.51, tpr_at_1_fpr=0.3) == "F"  # a low-FPR leak is not averaged away
    assert g.grade_extraction(fidelity=0.4) == "A"
    assert g.grade_extraction(fidelity=0.97) == "F"


def test_poisoning_never_grades_a_when_the_attack_works() -> None:
    assert g.grade_poisoning(attack_success=1.0, detection_tpr=1.0) == "B"
    assert g.grade_poisoning(attack_success=1.0, detection_tpr=0.6) == "C"
    assert g.grade_poisoning(attack_success=1.0, detection_tpr=0.0) == "F"
    assert g.grade_poisoning(attack_success=0.05, detection_tpr=0.0) == "A"  # the poison fails on its own


def _section(family: str, status: str = "ok", grade: str | None = "A") -> SectionResult:
    return SectionResult(family=family, status=status, seed=0, grade=grade, reason=f"{family}: r")


def _report(sections: dict[str, SectionResult]) -> AuditReport:
    grade, reasons = g.overall({f: (s.status, s.grade, s.reason) for f, s in sections.items()})
    return AuditReport(
        created="2026-01-01T00:00:00+00:00",
        bastion_version="0",
        model={},
        data={},
        budget="quick",
        seed=0,
        sections=sections,
        grade=grade,
        reasons=reasons,
    )


def test_only_a_complete_audit_gets_a_grade() -> None:
    only_evasion = _report({"evasion": _section("evasion")})
    assert only_evasion.grade == g.INCOMPLETE
    assert "not measured: membership (not requested)" in only_evasion.reasons[-1]
    assert "worst grade among the families that ran is A" in only_evasion.reasons[-1]
    skipped = _report(
        {f: _section(f) for f in g.FAMILIES} | {"poisoning": _section("poisoning", "skipped", None)}
    )
    assert skipped.grade == g.INCOMPLETE and "poisoning (skipped)" in skipped.reasons[-1]
    full = _report({f: _section(f, grade=gr) for f, gr in zip(g.FAMILIES, "ABCA", strict=True)})
    assert full.grade == "C" and len(full.reasons) == 4
    assert g.worst([]) == g.INCOMPLETE and g.worst(["A", g.INCOMPLETE]) == g.INCOMPLETE
    # a grade gate fails closed on an incomplete audit, even at the lowest bar
    gate = parse_policy({"overall": {"grade": {"min": "F"}}})
    assert [v.metric for v in check_policy(only_evasion, gate)] == ["grade"]
    assert check_policy(full, gate) == ()
