"""Lineage of a registry artifact, read through the vault so the permission check lives in the library.

``lineage(vault=..., ref=...)`` is what ``bastion lineage`` calls: it needs ``registry:read`` (the same
permission as ``registry show``), resolves REF to its dataset node and returns the OpenLineage graph of
the runs that produced it, back to the raw sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.store.lineage import (
    FILE_NAMESPACE,
    REGISTRY_NAMESPACE,
    LineageDataset,
    LineageGraph,
    lineage_graph,
    record_run,
    resolve_dataset,
)

if TYPE_CHECKING:
    from bastion.vault.refs import ArtifactVersion
    from bastion.vault.registry import Vault

# The file whose digest names a model directory in lineage ('bastion train --out' records the same digest).
_WEIGHTS_FILE = "model.safetensors"


def lineage(*, vault: Vault, ref: str, namespace: str = REGISTRY_NAMESPACE) -> LineageGraph:
    """The lineage graph of REF (``NAME``, ``NAME:VERSION`` or a dataset name); needs registry:read."""
    vault.access.check(vault.identity, "registry:read")
    root = resolve_dataset(vault.engine, ref, namespace=namespace)
    return lineage_graph(vault.engine, root=root)


def version_dataset(version: ArtifactVersion) -> LineageDataset:
    """A registry version as a lineage node (``NAME:VERSION``, its manifest digest)."""
    return LineageDataset(REGISTRY_NAMESPACE, version.ref, version.manifest_digest)


def path_dataset(path: str | os.PathLike[str], *, version: ArtifactVersion | None = None) -> LineageDataset:
    """A local file or model directory as a lineage node, named by its resolved path.

    The digest comes from ``version``'s signed manifest (the bytes the vault read), never from re-reading the
    path: a single file's SHA-256, or a model directory's weights file, which is what ``bastion train --out``
    and ``watermark embed --out`` record for the directory they write.
    """
    resolved = Path(path).resolve()
    digest = None
    if version is not None:
        by_path = {f.path: f.sha256 for f in version.files}
        sha = by_path.get(resolved.name) if len(by_path) == 1 else by_path.get(_WEIGHTS_FILE)
        if sha is not None:
            digest = f"sha256:{sha}"
    return LineageDataset(FILE_NAMESPACE, str(resolved), digest)


def record_artifact_run(
    vault: Vault,
    *,
    job: str,
    inputs: Sequence[LineageDataset],
    outputs: Sequence[LineageDataset],
    facets: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """One OpenLineage run for a command that created an artifact (needs a local vault: it writes the DB)."""
    record_run(vault.engine, job=job, inputs=list(inputs), outputs=list(outputs), facets=dict(facets or {}))


__all__ = ["lineage", "path_dataset", "record_artifact_run", "version_dataset"]
