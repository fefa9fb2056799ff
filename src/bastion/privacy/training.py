"""The built-in training recipe, private or not, wired to the privacy ledger.

:func:`train_recipe` trains the MLP recipe of :mod:`bastion.models.recipes` on a :class:`Dataset`. With
``dp=DPSettings(...)`` it plans the run first (sampling rate, steps, calibrated noise), reserves the planned ε
on the dataset's ledger entry (refused with BudgetExhausted before any training), trains with DP-SGD
(:func:`bastion.privacy.dp.make_private`) and settles the ε actually spent. A non-private run on a dataset
that has a privacy budget is refused: it would spend an unbounded ε.

Budgets are keyed by the dataset's content digest (:func:`ledger_key`: ``sha256:`` of a built-in dataset's raw
arrays or of a data file's bytes), so renaming or copying data never yields a fresh budget, and a dataset
without a budget is refused (there is no default budget). With a ``vault`` the caller also needs the
``privacy:train`` permission (checked here, not only in the CLI).

Length: ``train_recipe`` is one pipeline (plan, reserve in the ledger, train, settle) whose steps share
the ledger transaction; splitting it would pass that transaction between modules.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BudgetExhausted, InvalidInput
from bastion.models.data import DATASETS, Dataset, builtin_digest, file_digest
from bastion.models.recipes import (
    MlpConfig,
    TrainingHook,
    build_mlp,
    make_loader,
    train_model,
    unwrap_module,
)
from bastion.privacy.dp import (
    ACCOUNTANTS,
    PrivacySpent,
    check_delta,
    check_epsilon,
    make_private,
    noise_for_epsilon,
    noise_source,
    spent_for,
)

if TYPE_CHECKING:
    from torch import nn

    from bastion.privacy.ledger import PrivacyLedger

DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class DPSettings:
    """How to train privately: the target (ε, δ), the clipping norm and the accountant."""

    epsilon: float
    delta: float = DEFAULT_DELTA
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    secure_mode: bool = False

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        check_delta(self.delta)
        if not (self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)):
            raise InvalidInput(f"max_grad_norm must be a finite number > 0, got {self.max_grad_norm}")
        if self.accountant not in ACCOUNTANTS:
            raise InvalidInput(
                f"unknown accountant {self.accountant!r} (use one of {', '.join(ACCOUNTANTS)})"
            )


@dataclass(frozen=True)
class TrainingReport:
    """Result of :func:`train_recipe`. The DP fields are ``None`` for a non-private run."""

    dataset: str
    dataset_digest: str
    private: bool
    accuracy: float
    train_accuracy: float
    epochs: int
    steps: int
    batch_size: int
    seconds: float
    config: MlpConfig
    epsilon: float | None = None
    epsilon_rdp: float | None = None
    epsilon_prv: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    max_grad_norm: float | None = None
    accountant: str | None = None
    ledger_dataset: str | None = None
    spend_id: str | None = None
    secure_mode: bool = False
    # SHA-256 of what the data was loaded from (a CSV file's bytes): what 'data scan' classifies it under
    source_digest: str = ""
    module: Any = field(default=None, repr=False, compare=False)

    def metadata(self) -> dict[str, Any]:
        """What a trained artifact records in its registry metadata (JSON-ready)."""
        return {k: v for k, v in self.to_dict().items() if k != "config"} | {
            "architecture": self.config.to_dict()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "private": self.private,
            "accuracy": self.accuracy,
            "train_accuracy": self.train_accuracy,
            "epochs": self.epochs,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seconds": self.seconds,
            "config": self.config.to_dict(),
            "epsilon": self.epsilon,
            "epsilon_rdp": self.epsilon_rdp,
            "epsilon_prv": self.epsilon_prv,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "max_grad_norm": self.max_grad_norm,
            "accountant": self.accountant,
            "ledger_dataset": self.ledger_dataset,
            "source_digest": self.source_digest or None,
            "spend_id": self.spend_id,
            "noise_source": noise_source(secure_mode=self.secure_mode) if self.private else None,
        }


_DIGEST_KEY = re.compile(r"sha256:[0-9a-f]{64}")


def ledger_key(source: str | Path) -> str:
    """The ledger key of a dataset: ``sha256:<digest>`` of a built-in's raw arrays or a data file's bytes."""
    if isinstance(source, str) and source in DATASETS:
        return f"sha256:{builtin_digest(source)}"
    return f"sha256:{file_digest(source)}"


def dataset_ledger_key(dataset: Dataset) -> str:
    """The ledger key of a loaded :class:`Dataset` (its source digest; its arrays' digest if it has none)."""
    return f"sha256:{dataset.source_digest or dataset.digest()}"


def resolve_ledger_dataset(text: str) -> tuple[str, str | None]:
    """``(key, label)`` for what a user names: a built-in dataset, a data file, or a ``sha256:`` digest.

    Raises InvalidInput for anything else (a free-form name would be a budget nobody's data is charged to)."""
    if text in DATASETS:
        return ledger_key(text), text
    if _DIGEST_KEY.fullmatch(text):
        return text, None
    path = Path(text)
    if path.is_file():
        return ledger_key(path), path.name
    raise InvalidInput(
        f"{text!r} is not a built-in dataset ({', '.join(DATASETS)}), a data file, or sha256:<64 hex digits>",
        hint="budgets are keyed by the data's digest: name the built-in dataset or the file itself",
    )


def refuse_non_private_training(
    *, dataset: Dataset, ledger: PrivacyLedger | None, what: str, hint: str
) -> None:
    """Raise BudgetExhausted when ``dataset`` has a budget in ``ledger``: ``what`` (a non-private training,
    fine-tuning, …) would spend an unbounded ε on it. Every non-private training path asks this first."""
    if ledger is not None and ledger.has_budget(dataset_ledger_key(dataset)):
        raise BudgetExhausted(
            f"dataset {dataset.name!r} has a privacy budget: {what} would spend an unbounded ε", hint=hint
        )


def plan_private_run(
    *, n_train: int, batch_size: int, epochs: int, dp: DPSettings
) -> tuple[PrivacySpent, int]:
    """The (ε, noise, q, steps) a DP run will have, and its steps per epoch, computed before training."""
    if batch_size < 1 or epochs < 1:
        raise InvalidInput("batch_size and epochs must be ≥ 1")
    steps_per_epoch = math.ceil(n_train / batch_size)
    q = 1.0 / steps_per_epoch
    steps = steps_per_epoch * epochs
    sigma = noise_for_epsilon(
        target_epsilon=dp.epsilon, delta=dp.delta, sample_rate=q, steps=steps, accountant=dp.accountant
    )
    plan = spent_for(
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        delta=dp.delta,
        max_grad_norm=dp.max_grad_norm,
        accountant=dp.accountant,
    )
    return plan, steps_per_epoch


def train_recipe(
    *,
    dataset: Dataset,
    dp: DPSettings | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    hidden: Sequence[int] = (64,),
    seed: int = 0,
    ledger: PrivacyLedger | None = None,
    ledger_dataset: str | None = None,
    hooks: Sequence[TrainingHook] = (),
    vault: Any = None,
    ledger_label: str | None = None,
) -> TrainingReport:
    """Train the built-in MLP on ``dataset`` (DP-SGD when ``dp`` is given), spending ``ledger``.

    With ``vault`` (an open project vault) the caller needs ``privacy:train`` and the vault's ledger is used
    when ``ledger`` is not given. ``ledger_dataset`` defaults to the dataset's digest key
    (:func:`dataset_ledger_key`); ``ledger_label`` is how a refusal names it (default: the dataset's name).
    Defaults: 30 epochs, batch 128 and SGD lr 1.0 (no momentum) for DP; 20
    epochs, batch 64 and SGD lr 0.05 (momentum 0.9) otherwise. Raises BudgetExhausted before training when
    the ledger refuses the run (no budget, or not enough of it), AccessDenied without the permission.
    """
    import torch

    if vault is not None:
        vault.access.check(vault.identity, "privacy:train")
        if ledger is None:
            from bastion.privacy.ledger import ledger_for_vault

            ledger = ledger_for_vault(vault)

    private = dp is not None
    epochs = int(epochs if epochs is not None else (30 if private else 20))
    batch_size = int(batch_size if batch_size is not None else (128 if private else 64))
    batch_size = max(1, min(batch_size, dataset.n_train))
    lr = float(lr if lr is not None else (1.0 if private else 0.05))
    if epochs < 1:
        raise InvalidInput(f"epochs must be ≥ 1, got {epochs}")
    config = MlpConfig(n_features=dataset.n_features, n_classes=dataset.n_classes, hidden=tuple(hidden))
    key = ledger_dataset or dataset_ledger_key(dataset)
    labels = {key: ledger_label or dataset.name}  # what a refusal names (and its hint tells to budget)
    model = build_mlp(
        n_features=config.n_features, n_classes=config.n_classes, hidden=config.hidden, seed=seed
    )
    loader = make_loader(dataset.x_train, dataset.y_train, batch_size=batch_size, seed=seed)
    common: dict[str, Any] = {
        "dataset": dataset.name,
        "dataset_digest": dataset.digest(),
        "source_digest": dataset.source_digest,
        "batch_size": batch_size,
        "config": config,
    }
    if dp is None:
        if ledger is not None and ledger.has_budget(key):
            raise BudgetExhausted(
                f"dataset {dataset.name!r} has a privacy budget: non-private training would spend an "
                "unbounded ε",
                hint="train with --dp --epsilon E (charged to its budget)",
            )
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        result = train_model(
            model=model,
            dataset=dataset,
            epochs=epochs,
            seed=seed,
            hooks=hooks,
            optimizer=optimizer,
            data_loader=loader,
        )
        return TrainingReport(
            private=False,
            accuracy=result.accuracy,
            train_accuracy=result.train_accuracy,
            epochs=epochs,
            steps=result.steps,
            seconds=result.seconds,
            module=model,
            **common,
        )

    plan, _ = plan_private_run(n_train=dataset.n_train, batch_size=batch_size, epochs=epochs, dp=dp)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    reservation = None
    if ledger is not None:
        reservation = ledger.reserve(
            datasets=key,
            epsilon=plan.epsilon,
            delta=dp.delta,
            kind="train",
            details={
                "noise_multiplier": plan.noise_multiplier,
                "sample_rate": plan.sample_rate,
                "steps": plan.steps,
                "max_grad_norm": dp.max_grad_norm,
                "dataset_digest": common["dataset_digest"],
                "noise_source": noise_source(secure_mode=dp.secure_mode),
            },
            labels=labels,
        )
    start = time.perf_counter()
    wrapped = None
    try:
        wrapped = make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=plan.noise_multiplier,
            delta=dp.delta,
            max_grad_norm=dp.max_grad_norm,
            epochs=epochs,
            secure_mode=dp.secure_mode,
            accountant=dp.accountant,  # type: ignore[arg-type]
        )
        result = train_model(
            model=wrapped.module,
            dataset=dataset,
            epochs=epochs,
            seed=seed,
            hooks=hooks,
            optimizer=wrapped.optimizer,
            data_loader=wrapped.data_loader,
        )
        spent = wrapped.spent()
    except BaseException:
        if ledger is not None and reservation is not None:
            # Charge what was actually spent before the failure (the whole plan if unknown): fail closed.
            spent_eps = wrapped.spent().epsilon if wrapped is not None else plan.epsilon
            ledger.settle(reservation, epsilon=spent_eps, delta=dp.delta, details={"failed": True})
        raise
    if ledger is not None and reservation is not None:
        ledger.settle(
            reservation,
            epsilon=spent.epsilon,
            delta=spent.delta,
            details={
                "steps": spent.steps,
                "epsilon_rdp": spent.epsilon_rdp,
                "epsilon_prv": spent.epsilon_prv,
            },
        )
    inner: nn.Module = unwrap_module(wrapped.module)
    return TrainingReport(
        private=True,
        accuracy=result.accuracy,
        train_accuracy=result.train_accuracy,
        epochs=epochs,
        steps=spent.steps,
        seconds=time.perf_counter() - start,
        epsilon=spent.epsilon,
        epsilon_rdp=spent.epsilon_rdp,
        epsilon_prv=spent.epsilon_prv,
        delta=spent.delta,
        noise_multiplier=spent.noise_multiplier,
        sample_rate=spent.sample_rate,
        max_grad_norm=spent.max_grad_norm,
        accountant=spent.accountant,
        ledger_dataset=key if ledger is not None else None,
        spend_id=reservation.spend_id if reservation is not None else None,
        secure_mode=dp.secure_mode,
        module=inner,
        **common,
    )


def record_training(
    vault: Any,
    report: TrainingReport,
    *,
    source: str | Path,
    outputs: Sequence[tuple[str, str, str | None]] = (),
) -> None:
    """One lineage event (job ``privacy.train``) and one audit entry for a finished training run.

    ``source`` is the built-in dataset name or the data file; ``outputs`` are ``(namespace, name, digest)``
    of what the run wrote (a registry version, a model directory).
    """
    from bastion.models.data import DATASETS
    from bastion.store.lineage import FILE_NAMESPACE, LineageDataset, record_run

    if isinstance(source, str) and source in DATASETS:
        src = LineageDataset("bastion-builtin", source, f"sha256:{report.dataset_digest}")
    else:
        path = Path(source).resolve()
        src = LineageDataset(FILE_NAMESPACE, str(path), ledger_key(path))
    figures = {k: v for k, v in report.metadata().items() if k not in ("architecture", "dataset_digest")}
    record_run(
        vault.engine,
        job="privacy.train",
        inputs=[src],
        outputs=[LineageDataset(ns, name, digest) for ns, name, digest in outputs],
        facets={"bastion_train": figures},
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="privacy:train",
        target=report.ledger_dataset or report.dataset,
        outcome="ok",
        details={k: figures.get(k) for k in ("private", "epsilon", "delta", "accuracy", "steps", "spend_id")},
    )


__all__ = [
    "DEFAULT_DELTA",
    "DPSettings",
    "TrainingReport",
    "dataset_ledger_key",
    "ledger_key",
    "plan_private_run",
    "record_training",
    "refuse_non_private_training",
    "resolve_ledger_dataset",
    "train_recipe",
]
