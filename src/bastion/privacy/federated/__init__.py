"""Federated learning on Flower's deployment engine.

``federate(...)`` runs a real federation on 127.0.0.1: a SuperLink and K SuperNodes as separate processes,
TLS with certificates generated into the project home, FedAvg (McMahan et al. 2017) over a softmax model,
optional SecAgg+ (Bell et al. 2020) and optional DP-FedAvg with fixed clipping (McMahan et al. 2018), client-
or server-side clipping, noise added by the server. Each client's partition stays inside its SuperNode's
process; the server evaluates the global model on the test split every round. ε is client-level (one
client's whole dataset is the unit of privacy) with every client in every round (q = 1), from the RDP
accountant of ``dp-accounting``. Inside a project, that ε is reserved on the dataset's privacy ledger before
the run starts and settled after (:func:`federate` with ``vault=``).

The Flower components live in :mod:`bastion.privacy.federated.app`; ``write_app`` writes the app directory
that ``flwr run`` takes, for federations across real hosts (see the README).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from bastion.errors import InvalidInput
from bastion.privacy.federated._partition import MIN_SAMPLES_PER_CLIENT, partition, partition_digest
from bastion.privacy.federated._runner import (
    ClientPartition,
    FederationConfig,
    FederationResult,
    RoundResult,
    federation_epsilon,
    reserve_budget,
    run_federation,
    write_app,
)
from bastion.privacy.federated._tls import TlsMaterial, ensure_tls


def tls_directory(home: str | os.PathLike[str] | None = None) -> Path:
    """Where the federation's CA and server certificate live: ``<home>/federated/tls``."""
    from bastion.config import home_path

    return home_path(home) / "federated" / "tls"


def federate(
    *,
    dataset: str,
    clients: int,
    rounds: int,
    secagg: bool = False,
    dp_noise: float | None = None,
    clip: float | None = None,
    dp_side: str = "server",
    delta: float = 1e-5,
    local_epochs: int = 5,
    lr: float = 0.5,
    seed: int = 0,
    home: str | os.PathLike[str] | None = None,
    model_out: str | os.PathLike[str] | None = None,
    timeout_s: float = 300.0,
    vault: Any = None,
    ledger_dataset: str | None = None,
    push: str | None = None,
    env: str | None = None,
) -> FederationResult:
    """Run one federation on this host and return accuracy per round, round times, ε and the model path.

    With ``vault`` (an open project vault) the caller needs ``privacy:train``; the planned ε is reserved on
    the dataset's privacy ledger (``ledger_dataset``, default the dataset's name) before any Flower process
    starts and the spend settled after, the same ledger DP-SGD training and DP queries spend; the run is
    audit-logged (``privacy:federate``) and, with ``push=NAME``, the global model is pushed with lineage to
    every client's partition digest.

    Raises InvalidInput for bad arguments (fewer than 2 clients, too few samples per client, DP without both
    noise and clipping, server-side clipping with SecAgg+), NotFound for an unknown dataset, BudgetExhausted
    when the ledger refuses the run, ServiceError when a Flower process fails, DependencyMissing without the
    ``federated`` extra.
    """
    config = FederationConfig(
        dataset=dataset,
        clients=clients,
        rounds=rounds,
        secagg=secagg,
        dp_noise=dp_noise,
        clip=clip,
        dp_side=dp_side,
        delta=delta,
        local_epochs=local_epochs,
        lr=lr,
        seed=seed,
        timeout_s=timeout_s,
    )
    if push is not None and vault is None:
        raise InvalidInput("pushing the global model needs a project vault")
    ledger = None
    if vault is not None:
        from bastion.privacy.ledger import ledger_for_vault

        vault.access.check(vault.identity, "privacy:train")
        ledger = ledger_for_vault(vault)
    if home is None and vault is not None:
        home = vault.settings.home
    out = Path(model_out) if model_out is not None else None
    result = run_federation(
        config, tls_dir=tls_directory(home), model_out=out, ledger=ledger, ledger_dataset=ledger_dataset
    )
    if vault is None:
        return result
    if push is not None:
        from bastion.privacy.federated._push import push_global_model

        result = replace(result, model_ref=push_global_model(result=result, name=push, env=env, vault=vault))
    record_federation(vault, result)
    return result


def record_federation(vault: Any, result: FederationResult) -> None:
    """One audit entry (``privacy:federate``) for a finished federation: its ε, spend and model."""
    vault.audit.append(
        actor=vault.identity.name,
        action="privacy:federate",
        target=result.ledger_dataset or result.dataset,
        outcome="ok",
        details={
            "clients": result.clients,
            "rounds": len(result.rounds),
            "final_accuracy": result.final_accuracy,
            "secagg": result.secagg,
            "dp_side": result.dp_side,
            "epsilon": result.epsilon,
            "delta": result.delta,
            "spend_id": result.spend_id,
            "model_ref": result.model_ref,
        },
    )


__all__ = [
    "MIN_SAMPLES_PER_CLIENT",
    "ClientPartition",
    "FederationConfig",
    "FederationResult",
    "RoundResult",
    "TlsMaterial",
    "ensure_tls",
    "federate",
    "federation_epsilon",
    "partition",
    "partition_digest",
    "record_federation",
    "reserve_budget",
    "run_federation",
    "tls_directory",
    "write_app",
]
