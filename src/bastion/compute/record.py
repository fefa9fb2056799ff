"""A dataset scan as a project member: permission, catalog, lineage event and one audit-log entry per job.

:func:`~bastion.compute.protect.protect_dataset` records itself; a dataset scan is a pure function
(:func:`~bastion.compute.datasets.scan_dataset`) that this records when it ran inside a project, as
``bastion.data.service.scan`` does for one file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.compute.datasets import DatasetScan, scan_dataset
from bastion.compute.interface import Executor
from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.vault import Vault


def scan_dataset_recorded(vault: Vault, *, executor: Executor, **kwargs: Any) -> DatasetScan:
    """``scan_dataset(executor=executor, **kwargs)`` checked (``data:scan``), catalogued and audited."""
    from bastion.compute.objects import lineage_location
    from bastion.data.catalog import record_classification
    from bastion.store.lineage import LineageDataset, record_run

    vault.access.check(vault.identity, "data:scan")
    details: dict[str, Any] = {"input": str(kwargs.get("path")), "engine": executor.name}
    try:
        result = scan_dataset(executor=executor, **kwargs)
    except BastionError as exc:
        vault.audit.append(
            actor=vault.identity.name,
            action="data:scan",
            target=str(kwargs.get("path")),
            outcome="error",
            details={**details, "error": type(exc).__name__},
        )
        raise
    report = result.report
    record_classification(vault.engine, report, actor=vault.identity.name, sealer=vault.context.sealer)
    record_run(
        vault.engine,
        job="data.scan",
        inputs=[LineageDataset(*lineage_location(report.path), report.digest)],
        facets={
            "bastion_scan": {
                "label": report.label.value,
                "rows": report.rows,
                "entities": report.entity_counts(),
                "engine": executor.name,
                "partitions": len(result.partitions),
            }
        },
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="data:scan",
        target=report.path,
        outcome="ok",
        details={
            **details,
            "label": report.label.value,
            "rows": report.rows,
            "digest": report.digest,
            "partitions": len(result.partitions),
        },
    )
    return result


__all__ = ["scan_dataset_recorded"]
