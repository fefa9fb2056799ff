"""Embedding a trigger-set watermark: while training (a hook) or by fine-tuning an existing model.

* :func:`watermark_hook` — a :class:`~bastion.watermark.triggers.TriggerSetHook` for ``train_model`` (or
  ``bastion train --watermark``) that mixes ``per_batch`` triggers into every batch.
* :func:`embed` — fine-tune a trained torch model on its data with the triggers mixed in (the
  ``bastion watermark embed`` path), reporting clean accuracy before and after.

Either way the caller gets a :class:`~bastion.watermark.commitment.WatermarkRecord` to log with
:func:`~bastion.watermark.commitment.log_commitment`.

Fine-tuning is training: :func:`embed` with a ``vault`` (or a ``ledger``) refuses to fine-tune on a dataset
that has a privacy budget (non-private fine-tuning would spend an unbounded ε; embed while training with
``bastion train --dp --watermark-key`` instead), and :meth:`EmbedResult.metadata` rewrites the model's
metadata from what the fine-tuning did instead of carrying the base model's accuracy and ε forward.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.errors import InvalidInput
from bastion.models.adapters import TorchAdapter
from bastion.watermark.commitment import WatermarkRecord, make_record
from bastion.watermark.keys import WatermarkKey
from bastion.watermark.triggers import (
    DEFAULT_SIZE,
    TriggerSetHook,
    TriggerSpec,
    make_trigger_set,
    spec_for_dataset,
)
from bastion.watermark.verify import Verification, verify_triggers

if TYPE_CHECKING:
    from torch import nn

    from bastion.models.data import Dataset
    from bastion.privacy.ledger import PrivacyLedger


def watermark_hook(*, key: WatermarkKey, spec: TriggerSpec, per_batch: int = 4) -> TriggerSetHook:
    """The training hook that embeds ``key``'s trigger set for ``spec``."""
    return TriggerSetHook(make_trigger_set(key=key, spec=spec), per_batch=per_batch)


def adapter_for(module: nn.Module, spec: TriggerSpec) -> TorchAdapter:
    """A :class:`TorchAdapter` over a watermark-sized model."""
    clip = (spec.low, spec.high) if spec.kind == "image" else None
    return TorchAdapter(module, input_shape=spec.input_shape, n_classes=spec.n_classes, clip_values=clip)


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed` did: the commitment record, trigger accuracy and clean accuracy before/after."""

    record: WatermarkRecord
    verification: Verification
    accuracy_before: float
    accuracy_after: float
    epochs: int
    dataset: str = ""
    dataset_digest: str = ""
    lr: float = 0.0
    steps: int = 0

    @property
    def accuracy_drop(self) -> float:
        return self.accuracy_before - self.accuracy_after

    def metadata(self, base: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
        """The watermarked model's metadata, from this run: what it was fine-tuned on and its accuracy now.

        The fine-tuning was not differentially private, so ``private`` is false and no ε is claimed; the base
        model's figures are kept under ``fine_tuned_from`` (for a DP base trained on *other* data, its ε still
        bounds what the weights reveal about that data: fine-tuning on unrelated data is post-processing).
        """
        kept = {k: base[k] for k in _BASE_KEYS if k in base}
        if source is not None:
            kept["model"] = source
        return {
            "dataset": self.dataset,
            "dataset_digest": self.dataset_digest,
            "private": False,
            "accuracy": self.accuracy_after,
            "accuracy_before_watermark": self.accuracy_before,
            "epochs": self.epochs,
            "steps": self.steps,
            "lr": self.lr,
            "training": "watermark-fine-tune",
            "epsilon": None,
            "delta": None,
            "fine_tuned_from": kept,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "verification": self.verification.to_dict(),
            "trigger_accuracy": self.verification.trigger_accuracy,
            "p_value": self.verification.p_value,
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "accuracy_drop": self.accuracy_drop,
            "epochs": self.epochs,
        }


def embed(
    *,
    model: nn.Module,
    dataset: Dataset,
    key: WatermarkKey,
    size: int = DEFAULT_SIZE,
    epochs: int = 8,
    lr: float = 0.02,
    batch_size: int = 64,
    per_batch: int = 8,
    seed: int = 0,
    target: str | None = None,
    now: Callable[[], dt.datetime] | None = None,
    vault: Any = None,
    ledger: PrivacyLedger | None = None,
) -> EmbedResult:
    """Fine-tune ``model`` (in place) on ``dataset`` with ``key``'s trigger set mixed into every batch.

    The model must take ``dataset``'s features and classes. Returns the (not yet logged) record and the
    accuracies; the caller logs the record and saves the model. With ``vault`` the caller needs
    ``watermark:embed`` and the vault's privacy ledger is consulted (or ``ledger`` directly): a dataset with
    a privacy budget is refused with BudgetExhausted before any training.
    """
    from bastion.models.recipes import evaluate, train_model

    check_may_fine_tune(dataset=dataset, vault=vault, ledger=ledger)
    spec = spec_for_dataset(dataset, size=size)
    triggers = make_trigger_set(key=key, spec=spec)
    adapter = adapter_for(model, spec)
    if not _fits(model, spec):
        raise InvalidInput(
            f"wrong input shape: the model does not map {spec.input_shape} inputs to {spec.n_classes} classes"
        )
    before = evaluate(model, dataset.x_test, dataset.y_test)
    result = train_model(
        model=model,
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        hooks=[TriggerSetHook(triggers, per_batch=per_batch)],
    )
    record = make_record(triggers, target=target, now=now)
    check = verify_triggers(model=adapter, trigger_set=triggers, commitment=record.commitment)
    return EmbedResult(
        record=record,
        verification=check,
        accuracy_before=before,
        accuracy_after=result.accuracy,
        epochs=epochs,
        dataset=dataset.name,
        dataset_digest=dataset.digest(),
        lr=lr,
        steps=result.steps,
    )


def check_may_fine_tune(*, dataset: Dataset, vault: Any = None, ledger: PrivacyLedger | None = None) -> None:
    """Refuse (before any training) what :func:`embed` must not do: without ``watermark:embed`` on ``vault``
    (AccessDenied), or on a dataset with a privacy budget in the vault's (or ``ledger``'s) ledger
    (BudgetExhausted: non-private fine-tuning would spend an unbounded ε)."""
    if vault is not None:
        vault.access.check(vault.identity, "watermark:embed")
        if ledger is None:
            from bastion.privacy.ledger import ledger_for_vault

            ledger = ledger_for_vault(vault)
    from bastion.privacy.training import refuse_non_private_training

    refuse_non_private_training(
        dataset=dataset,
        ledger=ledger,
        what="fine-tuning on it without DP",
        hint="embed while training instead (bastion train --dp --epsilon E --watermark-key KEY), "
        "or fine-tune on data without a budget (--data FILE --target COL)",
    )


class TrainingWatermark:
    """Embed a watermark while training: pass :attr:`hook` to the loop, then :meth:`commit` the result.

    ``bastion train --watermark-key`` uses it::

        wm = TrainingWatermark(key=key, dataset=ds)
        train_model(model=m, dataset=ds, epochs=20, hooks=[wm.hook])
        record, check = wm.commit(vault=vault, model=m, target="digits-model")
    """

    def __init__(
        self, *, key: WatermarkKey, dataset: Dataset, size: int = DEFAULT_SIZE, per_batch: int = 4
    ) -> None:
        self.spec = spec_for_dataset(dataset, size=size)
        self.trigger_set = make_trigger_set(key=key, spec=self.spec)
        self.hook = TriggerSetHook(self.trigger_set, per_batch=per_batch)

    def commit(
        self, *, vault: Any, model: nn.Module, target: str | None = None
    ) -> tuple[WatermarkRecord, Verification]:
        """Check the trained model carries the mark, log the commitment, return the record and the check."""
        from bastion.watermark.commitment import log_commitment

        record = make_record(self.trigger_set, target=target)
        check = verify_triggers(
            model=adapter_for(model, self.spec), trigger_set=self.trigger_set, commitment=record.commitment
        )
        return log_commitment(vault, record), check


_BASE_KEYS = (
    "dataset",
    "dataset_digest",
    "private",
    "accuracy",
    "epsilon",
    "epsilon_rdp",
    "epsilon_prv",
    "delta",
    "accountant",
    "spend_id",
    "ledger_dataset",
    "noise_source",
)


def _fits(model: nn.Module, spec: TriggerSpec) -> bool:
    import torch

    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *spec.input_shape)))
    except (RuntimeError, ValueError):
        return False
    return tuple(out.shape) == (1, spec.n_classes)


def prune_magnitude(model: nn.Module, *, fraction: float = 0.5) -> int:
    """Zero the ``fraction`` smallest-magnitude weights of every Linear layer (in place); returns how many."""
    import torch
    from torch import nn as tnn

    if not 0.0 <= fraction < 1.0:
        raise InvalidInput(f"fraction must be in [0, 1), got {fraction}")
    zeroed = 0
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, tnn.Linear):
                w = layer.weight
                k = int(fraction * w.numel())
                if k == 0:
                    continue
                cut = w.abs().flatten().kthvalue(k).values
                mask = w.abs() <= cut
                zeroed += int(mask.sum())
                w[mask] = 0.0
    return zeroed


def fine_tune(
    model: nn.Module, dataset: Dataset, *, epochs: int = 10, lr: float = 0.02, seed: int = 0
) -> float:
    """Fine-tune ``model`` (in place) on ``dataset``'s clean training data; returns its test accuracy."""
    from bastion.models.recipes import train_model

    return train_model(model=model, dataset=dataset, epochs=epochs, lr=lr, seed=seed).accuracy


__all__ = [
    "EmbedResult",
    "TrainingWatermark",
    "adapter_for",
    "check_may_fine_tune",
    "embed",
    "fine_tune",
    "prune_magnitude",
    "watermark_hook",
]
