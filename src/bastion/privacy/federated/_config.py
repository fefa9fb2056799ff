"""A federation's settings (:class:`FederationConfig`, validated on construction), its results, and the
client-level ε of DP-FedAvg."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import DependencyMissing, InvalidInput
from bastion.privacy.federated._partition import MIN_SAMPLES_PER_CLIENT

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
