"""Models trained once per test session (digits MLPs) for the adversarial tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bastion.adversarial.attacks.membership import mlp_shadow_trainer
from bastion.models import TorchAdapter
from bastion.models.data import Dataset, load_dataset


@dataclass(frozen=True)
class Trained:
    data: Dataset
    model: TorchAdapter


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_trainer():  # type: ignore[no-untyped-def]
    return mlp_shadow_trainer(
        input_shape=(64,),
        n_classes=10,
        hidden=(64,),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        clip_values=(0.0, 1.0),
    )


@pytest.fixture(scope="session")
def digits_model(digits: Dataset, digits_trainer) -> TorchAdapter:  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)
    model = digits_trainer(digits.x_train, digits.y_train, 0)
    assert isinstance(model, TorchAdapter)
    assert float((model.predict(digits.x_test) == digits.y_test).mean()) > 0.93
    return model


@pytest.fixture(scope="session")
def eval_set(digits: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return digits.x_test[:200], digits.y_test[:200]
