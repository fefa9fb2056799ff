"""The model every federation trains: multinomial logistic regression in plain numpy.

A linear softmax model keeps each Flower process light (no torch import per ClientApp process), reaches
≥ 90 % on digits in three FedAvg rounds, and exports as one ``torch.nn.Linear``-shaped pair
(``weight`` ``[C, F]``, ``bias`` ``[C]``) that the HE module can evaluate on ciphertexts directly.
"""

from __future__ import annotations

import numpy as np

WEIGHT = "weight"
BIAS = "bias"


def init_params(n_features: int, n_classes: int) -> list[np.ndarray]:
    """Zero weights and bias: FedAvg from a common, deterministic start."""
    return [
        np.zeros((n_classes, n_features), dtype=np.float32),
        np.zeros((n_classes,), dtype=np.float32),
    ]


def logits(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    weight, bias = params
    return np.asarray(x @ weight.T + bias, dtype=np.float64)


def accuracy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return 0.0
    return float((logits(params, x).argmax(axis=1) == y).mean())


def loss(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    z = logits(params, x)
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def train(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> list[np.ndarray]:
    """Mini-batch SGD on the softmax cross-entropy; returns new float32 parameters."""
    weight = params[0].astype(np.float64).copy()
    bias = params[1].astype(np.float64).copy()
    n_classes = weight.shape[0]
    rng = np.random.default_rng(seed)
    onehot = np.eye(n_classes)[y]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx].astype(np.float64)
            z = xb @ weight.T + bias
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - onehot[idx]) / len(idx)
            weight -= lr * grad.T @ xb
            bias -= lr * grad.sum(axis=0)
    return [weight.astype(np.float32), bias.astype(np.float32)]
