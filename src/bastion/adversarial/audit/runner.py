"""The audit runner: validate the target, run each requested family's registered runner, grade the result."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

from bastion.adversarial import grading
from bastion.adversarial.audit.registry import families as registered_families
from bastion.adversarial.audit.registry import family_runner
from bastion.adversarial.audit.types import BUDGETS, AuditReport, AuditTarget, Progress, SectionResult
from bastion.adversarial.grading import FAMILIES
from bastion.errors import InvalidInput
from bastion.models.interface import check_input, check_labels


def _validate_target(t: AuditTarget) -> AuditTarget:
    m = t.model
    x = check_input(t.x, m.input_shape, name="data x")
    y = check_labels(t.y, x.shape[0], m.n_classes, name="data y")
    if x.shape[0] < 20:
        raise InvalidInput(f"the audit needs at least 20 held-out rows, got {x.shape[0]}")
    xt = yt = None
    if t.x_train is not None or t.y_train is not None:
        if t.x_train is None or t.y_train is None:
            raise InvalidInput("give both x_train and y_train")
        xt = check_input(t.x_train, m.input_shape, name="training x")
        yt = check_labels(t.y_train, xt.shape[0], m.n_classes, name="training y")
    if t.reference is not None and (
        tuple(t.reference.input_shape) != tuple(m.input_shape) or t.reference.n_classes != m.n_classes
    ):
        raise InvalidInput("the reference model must take the same inputs and classes as the audited one")
    return AuditTarget(
        model=m,
        x=x,
        y=y,
        x_train=xt,
        y_train=yt,
        trainer=t.trainer,
        description=t.description,
        reference=t.reference,
    )


def run_audit(
    *,
    target: AuditTarget,
    attacks: Sequence[str] = FAMILIES,
    budget: str = "quick",
    seed: int = 0,
    progress: Progress | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> AuditReport:
    """Run the requested attack families against ``target`` and grade the model."""
    from bastion import __version__

    if budget not in BUDGETS:
        raise InvalidInput(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    families = list(dict.fromkeys(attacks))
    unknown = [a for a in families if a not in registered_families()]
    if unknown or not families:
        raise InvalidInput(
            f"unknown attack famil{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}"
            if unknown
            else "choose at least one attack family",
            hint=f"choose from {', '.join(registered_families())}",
        )
    t = _validate_target(target)
    b = BUDGETS[budget]
    report_progress = progress or (lambda family, fraction, message: None)
    sections: dict[str, SectionResult] = {}
    for i, family in enumerate(families):
        start = time.perf_counter()
        result = family_runner(family)(t, b, seed + 1000 * i, report_progress)
        sections[family] = SectionResult(**{**result.__dict__, "seconds": time.perf_counter() - start})
        report_progress(family, 1.0, "done")
    grade, reasons = grading.overall({f: (s.status, s.grade, s.reason) for f, s in sections.items()})
    stamp = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat(timespec="seconds")
    desc = dict(t.description)
    data_desc = {
        "held_out_rows": int(t.x.shape[0]),
        "training_rows": None if t.x_train is None else int(t.x_train.shape[0]),
        **dict(desc.pop("data", {}) or {}),
    }
    return AuditReport(
        created=stamp,
        bastion_version=__version__,
        model=desc,
        data=data_desc,
        budget=budget,
        seed=seed,
        sections=sections,
        grade=grade,
        reasons=reasons,
    )


__all__ = ["run_audit"]
