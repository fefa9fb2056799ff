"""Run a real Flower federation on 127.0.0.1 (deployment engine) and collect its result.

One SuperLink and K SuperNodes start as separate processes on ephemeral ports with TLS (a private CA from
:mod:`._tls`). The run is submitted straight to the SuperLink's Control API (what ``flwr run`` does, minus
the managed local SuperLink it may leave behind), polled until it finishes, and every process is stopped in
a ``finally`` (plus an ``atexit`` hook) whatever happens. The settings and results live in :mod:`._config`,
the Flower plumbing (app file, executables, health check, Control API) in :mod:`._flower`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.errors import BudgetExhausted, ServiceError
from bastion.privacy.federated._config import (
    ClientPartition,
    FederationConfig,
    FederationResult,
    RoundResult,
    federation_epsilon,
)
from bastion.privacy.federated._flower import (
    _base_env,
    _control_client,
    _flower_executable,
    _submit_and_wait,
    _wait_healthy,
    write_app,
)
from bastion.privacy.federated._partition import (
    check_partition_sizes,
    partition,
    partition_digest,
)
from bastion.privacy.federated._procs import ProcessGroup, free_port, sigterm_as_exit
from bastion.privacy.federated._tls import ensure_tls

if TYPE_CHECKING:
    from bastion.privacy.ledger import PrivacyLedger, Reservation


def _partitions(config: FederationConfig) -> tuple[ClientPartition, ...]:
    """Load the dataset, check every client gets enough rows, and digest each client's partition."""
    from bastion.models.data import load_dataset

    ds = load_dataset(config.dataset, seed=config.seed)
    check_partition_sizes(ds.n_train, config.clients, minimum=config.min_samples_per_client)
    partitions = []
    for pid in range(config.clients):
        px, py = partition(ds.x_train, ds.y_train, partition_id=pid, num_partitions=config.clients)
        partitions.append(ClientPartition(pid, len(py), partition_digest(px, py)))
    return tuple(partitions)


def reserve_budget(
    config: FederationConfig, *, ledger: PrivacyLedger, ledger_dataset: str | None = None
) -> Reservation | None:
    """Reserve the federation's planned ε on its dataset, before any Flower process starts.

    ε is client-level (a client's whole partition is the unit), which implies the same (ε, δ) for any one
    record, so it is charged to the same per-dataset ledger as DP-SGD training and DP queries. A run
    without DP on a dataset that has a budget is refused (it would spend an unbounded ε), as in training.
    Raises BudgetExhausted (audit-logged by the ledger) and charges nothing when the budget is short.
    """
    from bastion.privacy.training import ledger_key

    key = ledger_dataset or ledger_key(config.dataset)
    if config.dp_noise is None:
        if ledger.has_budget(key):
            raise BudgetExhausted(
                f"dataset {config.dataset!r} has a privacy budget: a federation without DP would spend an "
                "unbounded ε",
                hint="add --dp-noise Z --clip C (charged to its budget)",
            )
        return None
    planned = federation_epsilon(noise_multiplier=config.dp_noise, rounds=config.rounds, delta=config.delta)
    return ledger.reserve(
        labels={key: config.dataset},
        datasets=key,
        epsilon=planned,
        delta=config.delta,
        kind="train",
        details={
            "mechanism": "dp-fedavg",
            "unit": "client",
            "clients": config.clients,
            "rounds": config.rounds,
            "noise_multiplier": config.dp_noise,
            "clipping_norm": config.clip,
            "dp_side": config.dp_side,
            "secagg": config.secagg,
        },
    )


def run_federation(
    config: FederationConfig,
    *,
    tls_dir: Path,
    model_out: Path | None = None,
    keep_logs: Path | None = None,
    ledger: PrivacyLedger | None = None,
    ledger_dataset: str | None = None,
) -> FederationResult:
    """Run one federation on 127.0.0.1 and return its result (processes always stopped).

    With ``ledger``, the planned ε is reserved on ``ledger_dataset`` (default: the dataset's digest key,
    :func:`bastion.privacy.training.ledger_key`) before anything starts (BudgetExhausted refuses the run) and
    settled afterwards; a run that fails after the reservation stays charged at its plan (fail closed).
    """
    from bastion.privacy.training import ledger_key

    partitions = _partitions(config)
    key = ledger_dataset or ledger_key(config.dataset)
    reservation = reserve_budget(config, ledger=ledger, ledger_dataset=key) if ledger is not None else None
    if ledger is None or reservation is None:
        return _execute(config, partitions, tls_dir=tls_dir, model_out=model_out, keep_logs=keep_logs)
    try:
        result = _execute(config, partitions, tls_dir=tls_dir, model_out=model_out, keep_logs=keep_logs)
    except BaseException:
        ledger.settle(
            reservation, epsilon=reservation.epsilon, delta=reservation.delta, details={"failed": True}
        )
        raise
    assert result.epsilon is not None and result.delta is not None
    ledger.settle(
        reservation,
        epsilon=result.epsilon,
        delta=result.delta,
        details={"rounds_completed": len(result.rounds), "final_accuracy": result.final_accuracy},
    )
    return replace(result, ledger_dataset=key, spend_id=reservation.spend_id)


def _execute(
    config: FederationConfig,
    partitions: tuple[ClientPartition, ...],
    *,
    tls_dir: Path,
    model_out: Path | None,
    keep_logs: Path | None,
) -> FederationResult:
    tls = ensure_tls(tls_dir)
    superlink_bin = _flower_executable("flower-superlink")
    supernode_bin = _flower_executable("flower-supernode")
    started = time.monotonic()
    deadline = started + config.timeout_s
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="bastion-fl-") as tmp_name:
        tmp = Path(tmp_name)
        results_path = tmp / "out" / "results.json"
        model_tmp = tmp / "out" / "model.safetensors"
        app_dir = tmp / "app"
        write_app(app_dir, config, results_path=results_path, model_path=model_tmp)
        logs = tmp / "logs"
        procs = ProcessGroup()
        try:
            port = free_port()
            procs.start(
                "superlink",
                [
                    superlink_bin,
                    "--ssl-certfile",
                    str(tls.server_cert),
                    "--ssl-keyfile",
                    str(tls.server_key),
                    "--ssl-ca-certfile",
                    str(tls.ca_cert),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--isolation",
                    "subprocess",
                    "--disable-runtime-dependency-installation",
                ],
                env=_base_env(tmp / "flwr-superlink"),
                log_path=logs / "superlink.log",
            )
            address = f"127.0.0.1:{port}"
            _wait_healthy(f"https://{address}/health", tls, procs, deadline=deadline)
            for pid in range(config.clients):
                procs.start(
                    f"supernode-{pid}",
                    [
                        supernode_bin,
                        "--superlink",
                        address,
                        "--root-certificates",
                        str(tls.ca_cert),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(free_port()),
                        "--node-config",
                        f"partition-id={pid} num-partitions={config.clients} "
                        f'cache-dir="{tmp / f"node-{pid}"}"',
                        "--isolation",
                        "subprocess",
                    ],
                    env=_base_env(tmp / f"flwr-supernode-{pid}"),
                    log_path=logs / f"supernode-{pid}.log",
                )
            client = _control_client(address, tls)
            try:
                run_id, sub_status, details = _submit_and_wait(client, app_dir, procs, deadline=deadline)
            finally:
                client.close()
            if sub_status != "completed" or not results_path.is_file():
                tail = procs.log_tail("superlink", lines=8)
                raise ServiceError(
                    f"federated run {run_id} ended as {sub_status or 'unknown'}: {details or tail[-400:]}"
                )
            data = json.loads(results_path.read_text(encoding="utf-8"))
            if keep_logs is not None:
                shutil.copytree(logs, keep_logs, dirs_exist_ok=True)
        finally:
            procs.stop()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        final_model = model_out or (
            tls_dir.parent / "models" / f"{config.dataset}-{stamp}-{uuid.uuid4().hex[:8]}.safetensors"
        )
        final_model.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_tmp, final_model)

    rounds = tuple(
        RoundResult(int(r["round"]), float(r["accuracy"]), float(r["loss"]), float(r["seconds"]))
        for r in data["rounds"]
    )
    if len(rounds) != config.rounds:
        raise ServiceError(f"the federation completed {len(rounds)} of {config.rounds} rounds")
    epsilon = None
    if config.dp_noise is not None:
        epsilon = federation_epsilon(
            noise_multiplier=config.dp_noise, rounds=config.rounds, delta=config.delta
        )
    return FederationResult(
        dataset=config.dataset,
        clients=config.clients,
        rounds=rounds,
        initial_accuracy=float(data["initial_accuracy"]),
        final_accuracy=rounds[-1].accuracy,
        secagg=config.secagg,
        dp_side=config.dp_side if config.dp else None,
        noise_multiplier=config.dp_noise,
        clipping_norm=config.clip,
        epsilon=epsilon,
        delta=config.delta if config.dp else None,
        partitions=partitions,
        model_path=final_model,
        tls=True,
        wall_seconds=time.monotonic() - started,
    )


__all__ = [
    "ClientPartition",
    "FederationConfig",
    "FederationResult",
    "RoundResult",
    "federation_epsilon",
    "reserve_budget",
    "run_federation",
    "write_app",
]
