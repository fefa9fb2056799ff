"""Push a federation's global model to the registry with lineage to every client's partition digest."""

from __future__ import annotations

import os
from typing import Any

from bastion.privacy.federated._runner import FederationResult

LINEAGE_JOB = "privacy.federate"
PARTITION_NAMESPACE = "bastion-federated"


def push_global_model(
    *,
    result: FederationResult,
    name: str,
    home: str | os.PathLike[str] | None = None,
    env: str | None = None,
    vault: Any = None,
) -> str:
    """Push ``result.model_path`` as model ``name`` and record one lineage run: the clients' partitions (by
    digest) in, the registry version out. Returns ``NAME:VERSION``. Uses ``vault`` when given, else opens the
    project's vault (passphrase from ``$BASTION_PASSPHRASE``)."""
    from bastion.store.lineage import REGISTRY_NAMESPACE, LineageDataset, record_run
    from bastion.vault import open_vault

    metadata: dict[str, Any] = {
        "federated": {
            "dataset": result.dataset,
            "clients": result.clients,
            "rounds": len(result.rounds),
            "final_accuracy": result.final_accuracy,
            "secagg": result.secagg,
            "dp_side": result.dp_side,
            "noise_multiplier": result.noise_multiplier,
            "clipping_norm": result.clipping_norm,
            "epsilon": result.epsilon,
            "delta": result.delta,
            "noise_source": result.to_dict()["noise_source"],
            "partition_digests": [p.digest for p in result.partitions],
        }
    }
    own = vault is None
    v = open_vault(home=home) if own else vault
    try:
        version = v.push(result.model_path, name=name, kind="model", env=env, metadata=metadata)
        record_run(
            v.engine,
            job=LINEAGE_JOB,
            inputs=[
                LineageDataset(
                    PARTITION_NAMESPACE, f"{result.dataset}/client-{p.partition_id}", f"sha256:{p.digest}"
                )
                for p in result.partitions
            ],
            outputs=[LineageDataset(REGISTRY_NAMESPACE, version.ref, version.manifest_digest)],
            facets={
                "bastion": {
                    "clients": result.clients,
                    "rounds": len(result.rounds),
                    "final_accuracy": result.final_accuracy,
                    "epsilon": result.epsilon,
                }
            },
        )
    finally:
        if own:
            v.close()
    return str(version.ref)
