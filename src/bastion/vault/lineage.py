"""Lineage of a registry artifact, read through the vault so the permission check lives in the library.

``lineage(vault=..., ref=...)`` is what ``bastion lineage`` calls: it needs ``registry:read`` (the same
permission as ``registry show``), resolves REF to its dataset node and returns the OpenLineage graph of
the runs that produced it, back to the raw sources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.store.lineage import REGISTRY_NAMESPACE, LineageGraph, lineage_graph, resolve_dataset

if TYPE_CHECKING:
    from bastion.vault.registry import Vault


def lineage(*, vault: Vault, ref: str, namespace: str = REGISTRY_NAMESPACE) -> LineageGraph:
    """The lineage graph of REF (``NAME``, ``NAME:VERSION`` or a dataset name); needs registry:read."""
    vault.access.check(vault.identity, "registry:read")
    root = resolve_dataset(vault.engine, ref, namespace=namespace)
    return lineage_graph(vault.engine, root=root)


__all__ = ["lineage"]
