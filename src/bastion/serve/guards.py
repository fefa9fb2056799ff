"""Input guard: batch, shape, dtype and range checks, NaN/Inf rejection, optional feature squeezing.

The body-size limit is enforced earlier, while the request streams in (see ``bastion.serve.app``). Feature
squeezing (Xu, Evans, Qi, NDSS 2018) compares the model's prediction on the input with its prediction on a
bit-depth-reduced copy and rejects inputs whose L1 distance exceeds a threshold; it comes from
``bastion.adversarial.defenses`` and is off unless configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bastion.errors import DependencyMissing, InvalidInput
from bastion.serve.config import InputGuardConfig
from bastion.serve.protocol import InferenceRequest, decode_tensor


class InputGuard:
    """Turns a request into a checked ``(n, *input_shape)`` float32 batch, or raises InvalidInput."""

    def __init__(
        self, *, config: InputGuardConfig, input_shape: tuple[int, ...], input_name: str = "input"
    ) -> None:
        self.config = config
        self.input_shape = tuple(int(d) for d in input_shape)
        self.input_name = input_name
        self._features = int(np.prod(self.input_shape))
        self._squeezer: Callable[[Any, np.ndarray], np.ndarray] | None = None
        if config.feature_squeezing:
            self._squeezer = _load_squeezer(config)

    def batch(self, request: InferenceRequest) -> np.ndarray:
        cfg = self.config
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input tensor ({self.input_name!r})")
        tensor = request.inputs[0]
        arr = decode_tensor(tensor, max_elements=cfg.max_batch * self._features)
        if arr.shape == self.input_shape:
            arr = arr.reshape((1, *self.input_shape))
        if arr.ndim != len(self.input_shape) + 1 or tuple(arr.shape[1:]) != self.input_shape:
            raise InvalidInput(f"input shape must be [n, {', '.join(map(str, self.input_shape))}]")
        if not 1 <= arr.shape[0] <= cfg.max_batch:
            raise InvalidInput(f"batch size must lie in 1..{cfg.max_batch}")
        x = arr.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise InvalidInput("input contains NaN or Inf")
        if cfg.min_value is not None and float(x.min()) < cfg.min_value:
            raise InvalidInput(f"input values must be >= {cfg.min_value}")
        if cfg.max_value is not None and float(x.max()) > cfg.max_value:
            raise InvalidInput(f"input values must be <= {cfg.max_value}")
        return x

    def check_adversarial(self, model: Any, x: np.ndarray) -> None:
        """Reject the batch when feature squeezing says it looks adversarial (no-op when not configured)."""
        if self._squeezer is None:
            return
        scores = self._squeezer(model, x)
        if np.any(scores > self.config.squeeze_threshold):
            raise InvalidInput("input rejected by the feature-squeezing detector")


def _load_squeezer(config: InputGuardConfig) -> Callable[[Any, np.ndarray], np.ndarray]:
    try:
        from bastion.adversarial import defenses
    except ImportError as exc:
        raise DependencyMissing(
            "feature squeezing needs bastion.adversarial.defenses, which is not available"
        ) from exc
    factory = getattr(defenses, "feature_squeezing_scores", None)
    if factory is None:
        raise DependencyMissing("bastion.adversarial.defenses has no feature-squeezing detector")
    bits = config.squeeze_bits

    def score(model: Any, x: np.ndarray) -> np.ndarray:
        return np.asarray(factory(model=model, x=x, bit_depth=bits))

    return score


__all__ = ["InputGuard"]
