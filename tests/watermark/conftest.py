"""Shared, session-scoped models for the watermark tests (trained once: the CPU is scarce)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bastion.watermark import WatermarkKey

KEY = WatermarkKey.from_secret(bytes(range(32)))
OTHER_KEY = WatermarkKey.from_secret(bytes(range(100, 132)))
EPOCHS = 20
LR = 0.05


@dataclass(frozen=True)
class Trained:
    module: Any
    accuracy: float


def _train(seed: int, hooks: tuple[Any, ...] = ()) -> Trained:
    from bastion.models.data import load_dataset
    from bastion.models.recipes import build_mlp, train_model

    ds = load_dataset("digits")
    model = build_mlp(n_features=ds.n_features, n_classes=ds.n_classes, hidden=(64,), seed=seed)
    result = train_model(model=model, dataset=ds, epochs=EPOCHS, lr=LR, seed=seed, hooks=hooks)
    return Trained(module=model, accuracy=result.accuracy)


@pytest.fixture(scope="session")
def digits() -> Any:
    from bastion.models.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def clean_model() -> Trained:
    return _train(0)


@pytest.fixture(scope="session")
def watermarked_model(digits: Any) -> Trained:
    from bastion.watermark import TrainingWatermark

    wm = TrainingWatermark(key=KEY, dataset=digits)
    return _train(0, hooks=(wm.hook,))


@pytest.fixture(scope="session")
def independent_models() -> list[Trained]:
    return [_train(seed) for seed in (1, 2, 3)]
