"""``bastion watermark embed``'s inputs and records: the fine-tuning dataset and the lineage it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.errors import InvalidInput


def _record_embed_lineage(vault: Any, *, model: str, dataset: Any, out: Path | None, pushed: Any) -> None:
    """Lineage of 'watermark embed': the source model and the fine-tuning data -> the watermarked model(s)."""
    from bastion.models.data import DATASETS, file_digest
    from bastion.models.recipes import WEIGHTS_FILE
    from bastion.store.lineage import LineageDataset
    from bastion.vault.lineage import path_dataset, record_artifact_run, version_dataset

    if getattr(vault, "engine", None) is None:
        return
    source = path_dataset(model) if Path(model).exists() else version_dataset(vault.show(model, _log=False))
    inputs = [source]
    if dataset.name in DATASETS:
        inputs.append(LineageDataset("bastion-builtin", dataset.name, f"sha256:{dataset.digest()}"))
    outputs = []
    if out is not None:
        outputs.append(
            LineageDataset("file", str(out.resolve()), f"sha256:{file_digest(out / WEIGHTS_FILE)}")
        )
    if pushed is not None:
        outputs.append(version_dataset(pushed))
    record_artifact_run(vault, job="watermark.embed", inputs=inputs, outputs=outputs)


def _default_dataset(model: str, metadata: Any, vault: Any) -> str | None:
    """The built-in dataset the model was trained on: its metadata, else the registry's lineage."""
    from bastion.models.data import DATASETS

    name = metadata.get("dataset") if hasattr(metadata, "get") else None
    if isinstance(name, str) and name in DATASETS:
        return name
    if vault is None or Path(model).exists():
        return None
    from bastion.errors import BastionError
    from bastion.store.lineage import lineage_graph, resolve_dataset

    try:
        vault.access.check(vault.identity, "registry:read")
        root = resolve_dataset(vault.engine, model, namespace="bastion-registry")
        sources = lineage_graph(vault.engine, root=root).sources
    except BastionError:
        return None
    builtins = sorted({s.name for s in sources if s.namespace == "bastion-builtin" and s.name in DATASETS})
    return builtins[0] if len(builtins) == 1 else None


def _dataset(dataset: str | None, data: Path | None, target: str | None, seed: int) -> Any:
    from bastion.models.data import load_csv, load_dataset

    if (dataset is None) == (data is None):
        raise InvalidInput(
            "give exactly one of --dataset NAME or --data FILE",
            hint="without either, the model's own training dataset is used when it is a built-in one",
        )
    if dataset is not None:
        return load_dataset(dataset, seed=seed)
    if not target:
        raise InvalidInput("--data needs --target COLUMN")
    assert data is not None
    return load_csv(data, target=target, seed=seed)
