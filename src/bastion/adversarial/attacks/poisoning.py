"""Training-set poisoning, to test a training pipeline and the backdoor detectors.

* :func:`badnets` — Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning
  Model Supply Chain", 2017: stamp a small checkerboard in the bottom-right corner of a fraction of the
  training inputs (taken from classes other than the target) and relabel them as the target class.
* :func:`label_flip` — random (or targeted) label flipping of a fraction of the training set.

Inputs are viewed as images the same way the evasion attacks do (a flat 64-vector is 8×8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.adversarial._common import image_view
from bastion.errors import InvalidInput


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger: where (``mask``) and what (``pattern``) to stamp, in the input's shape."""

    mask: np.ndarray = field(repr=False)
    pattern: np.ndarray = field(repr=False)
    size: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Inputs with the trigger stamped on (a copy)."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.shape[1:] != self.mask.shape:
            raise InvalidInput(f"trigger shape {self.mask.shape} does not match inputs {arr.shape[1:]}")
        return np.where(self.mask[None], self.pattern[None], arr).astype(np.float32)


def badnets_trigger(
    input_shape: tuple[int, ...], *, size: int = 3, low: float = 0.0, high: float = 1.0
) -> Trigger:
    """A ``size × size`` checkerboard (``high``/``low``) in the bottom-right corner of every channel."""
    c, h, w = image_view(tuple(input_shape))
    if size < 1 or size > w or (h > 1 and size > h):
        raise InvalidInput(f"trigger size must be between 1 and {min(h, w) if h > 1 else w}")
    mask = np.zeros((c, h, w), dtype=bool)
    pattern = np.zeros((c, h, w), dtype=np.float32)
    sh = min(size, h)
    rows = np.arange(h - sh, h)[:, None]
    cols = np.arange(w - size, w)[None, :]
    mask[:, rows, cols] = True
    board = ((rows + cols) % 2 == 0).astype(np.float32)
    pattern[:, rows, cols] = np.where(board > 0, high, low)
    return Trigger(mask=mask.reshape(input_shape), pattern=pattern.reshape(input_shape), size=size)


@dataclass(frozen=True)
class PoisonedSet:
    """A poisoned copy of a training set; ``poisoned`` marks the changed rows."""

    kind: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    poisoned: np.ndarray = field(repr=False)
    rate: float
    target: int | None
    trigger: Trigger | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rate": self.rate,
            "n_poisoned": int(self.poisoned.sum()),
            "n_total": int(self.poisoned.size),
            "target": self.target,
            "trigger_size": None if self.trigger is None else self.trigger.size,
        }


def _check(x: Any, y: Any, rate: float) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(x, dtype=np.float32)
    ys = np.asarray(y, dtype=np.int64)
    if xs.shape[0] == 0 or xs.shape[0] != ys.shape[0]:
        raise InvalidInput("poisoning needs a non-empty training set with one label per example")
    if not 0 < rate < 1:
        raise InvalidInput(f"rate must be between 0 and 1, got {rate}")
    return xs, ys


def badnets(
    x: Any,
    y: Any,
    *,
    rate: float = 0.1,
    target: int = 0,
    trigger: Trigger | None = None,
    seed: int = 0,
) -> PoisonedSet:
    """Stamp ``trigger`` on ``rate`` of the training set (non-target rows) and relabel them ``target``."""
    xs, ys = _check(x, y, rate)
    trig = trigger or badnets_trigger(xs.shape[1:])
    candidates = np.flatnonzero(ys != target)
    n = round(rate * xs.shape[0])
    if n < 1 or n > candidates.size:
        raise InvalidInput(f"cannot poison {n} of {candidates.size} non-target examples")
    rng = np.random.default_rng(seed)
    idx = rng.choice(candidates, size=n, replace=False)
    px, py = xs.copy(), ys.copy()
    px[idx] = trig.apply(xs[idx])
    py[idx] = target
    flags = np.zeros(xs.shape[0], dtype=bool)
    flags[idx] = True
    return PoisonedSet(kind="badnets", x=px, y=py, poisoned=flags, rate=rate, target=target, trigger=trig)


def label_flip(
    x: Any, y: Any, *, rate: float = 0.1, n_classes: int, target: int | None = None, seed: int = 0
) -> PoisonedSet:
    """Flip ``rate`` of the labels: to a random other class, or to ``target`` when given."""
    xs, ys = _check(x, y, rate)
    if n_classes < 2:
        raise InvalidInput("n_classes must be >= 2")
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(ys != target) if target is not None else np.arange(xs.shape[0])
    n = round(rate * xs.shape[0])
    if n < 1 or n > pool.size:
        raise InvalidInput(f"cannot flip {n} of {pool.size} labels")
    idx = rng.choice(pool, size=n, replace=False)
    py = ys.copy()
    if target is not None:
        py[idx] = target
    else:
        py[idx] = (ys[idx] + rng.integers(1, n_classes, size=n)) % n_classes
    flags = np.zeros(xs.shape[0], dtype=bool)
    flags[idx] = True
    return PoisonedSet(kind="label-flip", x=xs.copy(), y=py, poisoned=flags, rate=rate, target=target)


__all__ = ["PoisonedSet", "Trigger", "badnets", "badnets_trigger", "label_flip"]
