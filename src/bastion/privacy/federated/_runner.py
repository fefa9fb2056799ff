"""Run a real Flower federation on 127.0.0.1 (deployment engine) and collect its result.

One SuperLink and K SuperNodes start as separate processes on ephemeral ports with TLS (a private CA from
:mod:`._tls`). The run is submitted straight to the SuperLink's Control API (what ``flwr run`` does, minus
the managed local SuperLink it may leave behind), polled until it finishes, and every process is stopped in
a ``finally`` (plus an ``atexit`` hook) whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BudgetExhausted, DependencyMissing, InvalidInput, ServiceError
from bastion.privacy.federated._partition import (
    MIN_SAMPLES_PER_CLIENT,
    check_partition_sizes,
    partition,
    partition_digest,
)
from bastion.privacy.federated._procs import ProcessGroup, free_port, sigterm_as_exit
from bastion.privacy.federated._tls import TlsMaterial, ensure_tls

if TYPE_CHECKING:
    from bastion.privacy.ledger import PrivacyLedger, Reservation

APP_PUBLISHER = "bastion"
APP_NAME = "bastion-federation"
SERVER_COMPONENT = "bastion.privacy.federated.app:server_app"
CLIENT_COMPONENT = "bastion.privacy.federated.app:client_app"
DP_SIDES = ("server", "client")
MAX_CLIENTS = 64
MAX_ROUNDS = 1000
# Flower's DP strategies draw the Gaussian noise with NumPy's default generator: reported beside every ε.
FLOWER_NOISE_SOURCE: dict[str, Any] = {
    "generator": "numpy.random (Flower DP strategy)",
    "cryptographic": False,
    "note": "DP-FedAvg noise came from NumPy's non-cryptographic PRNG: ε assumes ideal Gaussian noise",
}


@dataclass(frozen=True)
class FederationConfig:
    """Everything one federation run needs; validated on construction."""

    dataset: str
    clients: int
    rounds: int
    secagg: bool = False
    dp_noise: float | None = None
    clip: float | None = None
    dp_side: str = "server"
    delta: float = 1e-5
    local_epochs: int = 5
    lr: float = 0.5
    batch_size: int = 32
    seed: int = 0
    min_samples_per_client: int = MIN_SAMPLES_PER_CLIENT
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not 2 <= self.clients <= MAX_CLIENTS:
            raise InvalidInput(f"--clients must be between 2 and {MAX_CLIENTS}, got {self.clients}")
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidInput(f"--rounds must be between 1 and {MAX_ROUNDS}, got {self.rounds}")
        if self.secagg and self.clients < 3:
            raise InvalidInput("SecAgg+ needs at least 3 clients (secret shares go to more than 2 peers)")
        if (self.dp_noise is None) != (self.clip is None):
            raise InvalidInput("differential privacy needs both --dp-noise and --clip")
        if self.dp_noise is not None and not self.dp_noise > 0:
            raise InvalidInput(f"--dp-noise must be > 0, got {self.dp_noise}")
        if self.clip is not None and not self.clip > 0:
            raise InvalidInput(f"--clip must be > 0, got {self.clip}")
        if self.dp_side not in DP_SIDES:
            raise InvalidInput(f"--dp-side must be one of {', '.join(DP_SIDES)}, got {self.dp_side!r}")
        if self.dp and self.secagg and self.dp_side == "server":
            raise InvalidInput(
                "server-side clipping needs each client's update in the clear, which SecAgg+ hides",
                hint="use --dp-side client with --secagg",
            )
        if not 0 < self.delta < 1:
            raise InvalidInput(f"delta must be in (0, 1), got {self.delta}")
        if self.local_epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InvalidInput("local epochs, batch size and learning rate must be positive")
        if not self.timeout_s > 0:
            raise InvalidInput("timeout must be positive")

    @property
    def dp(self) -> bool:
        return self.dp_noise is not None

    def run_config(self, *, results_path: Path, model_path: Path) -> dict[str, Any]:
        """The ``[tool.flwr.app.config]`` table of the app."""
        return {
            "dataset": self.dataset,
            "num-clients": self.clients,
            "rounds": self.rounds,
            "secagg": self.secagg,
            "dp": self.dp_side if self.dp else "none",
            "dp-noise": float(self.dp_noise or 0.0),
            "clip": float(self.clip or 0.0),
            "local-epochs": self.local_epochs,
            "lr": self.lr,
            "batch-size": self.batch_size,
            "seed": self.seed,
            "results-path": str(results_path),
            "model-path": str(model_path),
        }


@dataclass(frozen=True)
class RoundResult:
    round: int
    accuracy: float
    loss: float
    seconds: float


@dataclass(frozen=True)
class ClientPartition:
    partition_id: int
    samples: int
    digest: str


@dataclass(frozen=True)
class FederationResult:
    """What a federation produced. ``epsilon`` is client-level (ε, δ)-DP over all rounds, or None."""

    dataset: str
    clients: int
    rounds: tuple[RoundResult, ...]
    initial_accuracy: float
    final_accuracy: float
    secagg: bool
    dp_side: str | None
    noise_multiplier: float | None
    clipping_norm: float | None
    epsilon: float | None
    delta: float | None
    partitions: tuple[ClientPartition, ...]
    model_path: Path
    tls: bool
    wall_seconds: float
    model_ref: str | None = None
    ledger_dataset: str | None = None
    spend_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy_per_round(self) -> list[float]:
        return [r.accuracy for r in self.rounds]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "clients": self.clients,
            "rounds": [r.__dict__ for r in self.rounds],
            "accuracy_per_round": self.accuracy_per_round,
            "round_seconds": [r.seconds for r in self.rounds],
            "initial_accuracy": self.initial_accuracy,
            "final_accuracy": self.final_accuracy,
            "secagg": self.secagg,
            "dp_side": self.dp_side,
            "noise_multiplier": self.noise_multiplier,
            "clipping_norm": self.clipping_norm,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "partitions": [p.__dict__ for p in self.partitions],
            "model_path": str(self.model_path),
            "model_ref": self.model_ref,
            "ledger_dataset": self.ledger_dataset,
            "spend_id": self.spend_id,
            "noise_source": FLOWER_NOISE_SOURCE if self.epsilon is not None else None,
            "tls": self.tls,
            "wall_seconds": self.wall_seconds,
        }


def federation_epsilon(*, noise_multiplier: float, rounds: int, delta: float) -> float:
    """Client-level ε of DP-FedAvg, every client in every round: ``rounds`` Gaussian mechanisms (RDP)."""
    try:
        from dp_accounting import dp_event, rdp
    except ImportError as exc:
        raise DependencyMissing(
            "dp-accounting is needed to report ε", hint="pip install 'bastion-ml[privacy]'"
        ) from exc
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(noise_multiplier), rounds))
    return float(accountant.get_epsilon(delta))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_app(directory: Path, config: FederationConfig, *, results_path: Path, model_path: Path) -> Path:
    """Write the Flower app (a ``pyproject.toml`` naming bastion's components) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{APP_NAME}"',
        'version = "1.0.0"',
        'description = "bastion federated training (FedAvg, optional SecAgg+ and DP)"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        f'publisher = "{APP_PUBLISHER}"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{SERVER_COMPONENT}"',
        f'clientapp = "{CLIENT_COMPONENT}"',
        "",
        "[tool.flwr.app.config]",
    ]
    for key, value in config.run_config(results_path=results_path, model_path=model_path).items():
        lines.append(f"{key} = {_toml_value(value)}")
    path = directory / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _flower_executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DependencyMissing(f"{name} not found", hint="pip install 'bastion-ml[federated]'")
    return found


def _base_env(flwr_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        }
    )
    return env


def _wait_healthy(url: str, tls: TlsMaterial, procs: ProcessGroup, *, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        if procs.dead():
            raise ServiceError(
                "the Flower SuperLink exited during start-up: " + procs.log_tail("superlink", lines=3)
            )
        try:
            if httpx.get(url, verify=str(tls.ca_cert), timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServiceError("the Flower SuperLink did not become healthy in time")


def _control_client(address: str, tls: TlsMaterial) -> Any:
    from flwr.cli.cli_client_interceptor import CliClientHttpInterceptor
    from flwr.supercore.control.control_http_client import ControlHttpClient
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor

    return ControlHttpClient.from_server_address(
        server_address=address,
        insecure=False,
        root_certificates=tls.ca_cert.read_bytes(),
        interceptors=[
            CliClientHttpInterceptor(),
            RuntimeVersionHttpInterceptor(component_name="flwr CLI"),
        ],
    )


def _submit_and_wait(
    client: Any, app_dir: Path, procs: ProcessGroup, *, deadline: float
) -> tuple[int, str, str]:
    from flwr.cli.build import build_fab_from_disk
    from flwr.common.serde import fab_to_proto
    from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest
    from flwr.supercore.fab import Fab

    fab_bytes = build_fab_from_disk(app_dir)
    import hashlib

    fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
    res = client.StartRun(StartRunRequest(fab=fab_to_proto(fab)))
    if not res.HasField("run_id"):
        raise ServiceError("the SuperLink did not start the run")
    run_id = int(res.run_id)
    while True:
        runs = client.ListRuns(ListRunsRequest(run_id=run_id))
        run = runs.run_dict.get(run_id)
        if run is not None and run.status.status == "finished":
            return run_id, run.status.sub_status, run.status.details
        dead = procs.dead()
        if dead:
            raise ServiceError(f"Flower process(es) exited during the run: {', '.join(dead)}")
        if time.monotonic() > deadline:
            client.StopRun(StopRunRequest(run_id=run_id))
            raise ServiceError("the federation did not finish before the timeout")
        time.sleep(0.3)


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
