"""Trigger-set watermark (Adi et al., "Turning Your Weakness Into a Strength: Watermarking Deep Neural
Networks by Backdooring", USENIX Security 2018).

The owner trains the model to give key-chosen labels on a small set of out-of-distribution inputs; anyone
holding the key can regenerate that set and test a suspect model on it. Deviations from the paper:

* the trigger inputs are not abstract images but keyed noise: a numpy ``Generator`` is seeded with
  HKDF-SHA256 of the key (label ``bastion-watermark-triggers-v1`` and the canonical spec), so the set is a
  deterministic function of key and spec and never has to be stored;
* ``image`` triggers are binary noise patterns (each pixel at the low or the high end of the valid range),
  ``tabular`` triggers are vectors whose every feature lies 4–8 standard deviations out (features are
  standardised), both far from the data a model sees in ordinary use;
* labels are drawn uniformly and independently from ``0 .. n_classes - 1`` by the same generator, so a model
  that never saw the set hits each label with probability exactly ``1 / n_classes`` — the null hypothesis of
  the binomial test in :mod:`bastion.watermark.verify`;
* the commitment (:class:`~bastion.watermark.commitment.WatermarkRecord`) hashes the trigger set and the key
  id, so the key itself never has to be disclosed before a dispute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.crypto.canonical import legacy_json
from bastion.errors import InvalidInput
from bastion.watermark.keys import WatermarkKey

if TYPE_CHECKING:
    import torch
    from torch import nn

    from bastion.models.data import Dataset

KINDS: tuple[str, ...] = ("image", "tabular")
TRIGGER_LABEL = "bastion-watermark-triggers-v1"
DEFAULT_SIZE = 50
MAX_SIZE = 10_000
TABULAR_RANGE = (4.0, 8.0)


@dataclass(frozen=True)
class TriggerSpec:
    """What a trigger set looks like: one example's shape, the classes, how many triggers, which kind.

    ``low``/``high`` are the valid input range of ``image`` models (their clip values).
    """

    input_shape: tuple[int, ...]
    n_classes: int
    size: int = DEFAULT_SIZE
    kind: str = "image"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d < 1 for d in shape):
            raise InvalidInput(f"trigger input_shape must hold positive sizes, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        if int(self.n_classes) < 2:
            raise InvalidInput(f"a watermark needs at least 2 classes, got {self.n_classes}")
        if not 10 <= int(self.size) <= MAX_SIZE:
            raise InvalidInput(f"the trigger set size must be in 10..{MAX_SIZE}, got {self.size}")
        if self.kind not in KINDS:
            raise InvalidInput(f"trigger kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not float(self.low) < float(self.high):
            raise InvalidInput("the trigger range needs low < high")

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "n_classes": int(self.n_classes),
            "size": int(self.size),
            "kind": self.kind,
            "low": float(self.low),
            "high": float(self.high),
        }

    @classmethod
    def from_dict(cls, data: Any) -> TriggerSpec:
        try:
            return cls(
                input_shape=tuple(int(d) for d in data["input_shape"]),
                n_classes=int(data["n_classes"]),
                size=int(data["size"]),
                kind=str(data["kind"]),
                low=float(data["low"]),
                high=float(data["high"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("not a valid trigger spec") from exc

    def canonical(self) -> bytes:
        # trigger-derivation v1: these bytes seed the trigger set of every key in use (kept exactly)
        return legacy_json(self.to_dict(), ascii=True)


def spec_for_dataset(dataset: Dataset, *, size: int = DEFAULT_SIZE) -> TriggerSpec:
    """The trigger spec for a model of ``dataset``: ``image`` when it has clip values, else ``tabular``."""
    clip = dataset.clip_values
    return TriggerSpec(
        input_shape=tuple(int(d) for d in dataset.x_train.shape[1:]),
        n_classes=int(dataset.n_classes),
        size=size,
        kind="image" if clip is not None else "tabular",
        low=float(clip[0]) if clip is not None else 0.0,
        high=float(clip[1]) if clip is not None else 1.0,
    )


@dataclass(frozen=True)
class TriggerSet:
    """The trigger inputs ``x`` and their key-assigned labels ``y``, regenerated from key and spec."""

    spec: TriggerSpec
    key_id: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)

    def digest(self) -> str:
        """SHA-256 over the spec, the inputs and the labels: what the commitment binds."""
        h = hashlib.sha256(b"bastion-watermark-trigger-set-v1\x00")
        h.update(self.spec.canonical())
        h.update(np.ascontiguousarray(self.x, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.y, dtype="<i8").tobytes())
        return h.hexdigest()


def _generator(key: WatermarkKey, spec: TriggerSpec) -> np.random.Generator:
    seed = key.derive(f"{TRIGGER_LABEL}:{spec.canonical().decode()}")
    return np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))


def make_trigger_set(*, key: WatermarkKey, spec: TriggerSpec) -> TriggerSet:
    """The trigger set of ``key`` for ``spec`` (deterministic: same key and spec, same set)."""
    rng = _generator(key, spec)
    shape = (int(spec.size), *spec.input_shape)
    if spec.kind == "image":
        bits = rng.random(shape) < 0.5
        x = np.where(bits, spec.high, spec.low)
    else:
        lo, hi = TABULAR_RANGE
        x = rng.uniform(lo, hi, size=shape) * rng.choice(np.array([-1.0, 1.0]), size=shape)
    y = rng.integers(0, int(spec.n_classes), size=int(spec.size))
    return TriggerSet(spec=spec, key_id=key.key_id, x=x.astype(np.float32), y=y.astype(np.int64))


class TriggerSetHook:
    """A :class:`~bastion.models.recipes.TrainingHook` that appends ``per_batch`` triggers to every batch.

    The triggers are taken in a fixed rotation, so each is seen equally often. Use it with
    ``train_model(..., hooks=[TriggerSetHook(trigger_set)])`` or any loop that calls ``on_batch``.
    """

    def __init__(self, trigger_set: TriggerSet, *, per_batch: int = 4) -> None:
        if not 1 <= per_batch <= trigger_set.x.shape[0]:
            raise InvalidInput(f"per_batch must be in 1..{trigger_set.x.shape[0]}, got {per_batch}")
        self.trigger_set = trigger_set
        self.per_batch = int(per_batch)
        self._next = 0

    def on_batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        n = self.trigger_set.x.shape[0]
        idx = (np.arange(self.per_batch) + self._next) % n
        self._next = int((self._next + self.per_batch) % n)
        tx = torch.from_numpy(self.trigger_set.x[idx]).to(dtype=x.dtype, device=x.device)
        ty = torch.from_numpy(self.trigger_set.y[idx]).to(dtype=y.dtype, device=y.device)
        return torch.cat([x, tx.reshape((-1, *x.shape[1:]))]), torch.cat([y, ty])


__all__ = [
    "KINDS",
    "TriggerSet",
    "TriggerSetHook",
    "TriggerSpec",
    "make_trigger_set",
    "spec_for_dataset",
]
