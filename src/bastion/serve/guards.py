"""Input guard: batch, shape, dtype and range checks, NaN/Inf rejection, optional feature squeezing.

Requests carry raw features. When the model directory stores its training preprocessing (``config.json``,
``preprocessing``), :meth:`InputGuard.batch` applies it exactly once, right after the shape/NaN checks; the
range limits (``min_value``/``max_value``), feature squeezing and every later stage (model, drift, API
watermark, theft defence, extraction monitor) then work in the model's input space.

The body-size limit is enforced earlier, while the request streams in (see ``bastion.serve.app``). Feature
squeezing (Xu, Evans, Qi, NDSS 2018) compares the model's prediction on the input with its prediction on a
bit-depth-reduced (and optionally median-filtered) copy and rejects inputs whose L1 distance exceeds a
threshold; the detector is ``bastion.adversarial.defenses.feature_squeezing`` and is off unless configured
(calibrate ``squeeze_threshold`` on clean data with ``calibrate_feature_squeezing``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.errors import ConfigError, DependencyMissing, InvalidInput
from bastion.serve.config import InputGuardConfig
from bastion.serve.protocol import InferenceRequest, decode_tensor


class InputGuard:
    """Turns a request into a checked ``(n, *input_shape)`` float32 batch, or raises InvalidInput."""

    def __init__(
        self,
        *,
        config: InputGuardConfig,
        input_shape: tuple[int, ...],
        input_name: str = "input",
        model: Any = None,
        preprocessing: Any = None,
    ) -> None:
        self.config = config
        self.preprocessing = preprocessing  # raw request features -> the model's input space (applied once)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.input_name = input_name
        self._features = int(np.prod(self.input_shape))
        self._squeezer: Any = _load_squeezer(config, model) if config.feature_squeezing else None

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
        if self.preprocessing is not None:  # the model's stored scaling; the range limits bound its output
            x = self.preprocessing.apply(x.reshape(len(x), -1)).reshape(x.shape)
            if not np.isfinite(x).all():
                raise InvalidInput("input values are out of range for the model's preprocessing")
        if cfg.min_value is not None and float(x.min()) < cfg.min_value:
            raise InvalidInput(f"input values must be >= {cfg.min_value}")
        if cfg.max_value is not None and float(x.max()) > cfg.max_value:
            raise InvalidInput(f"input values must be <= {cfg.max_value}")
        return x

    def texts(self, request: InferenceRequest, *, max_chars: int) -> list[str]:
        """A text model's batch: one BYTES tensor of shape ``[n]`` or ``[n, 1]`` holding strings."""
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input tensor ({self.input_name!r})")
        tensor = request.inputs[0]
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"input {tensor.name!r}: a text model takes datatype BYTES")
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInput(f"input {tensor.name!r}: shape must be [n] or [n, 1]")
        data: list[Any] = tensor.data
        if data and isinstance(data[0], list):
            data = [row[0] if isinstance(row, list) and len(row) == 1 else None for row in data]
        if len(data) != shape[0] or not 1 <= len(data) <= self.config.max_batch:
            raise InvalidInput(f"input {tensor.name!r}: 1..{self.config.max_batch} texts matching the shape")
        if not all(isinstance(t, str) for t in data):
            raise InvalidInput(f"input {tensor.name!r}: BYTES data must be strings")
        if any(len(t) > max_chars for t in data):
            raise InvalidInput(f"input {tensor.name!r}: a text is longer than {max_chars} characters")
        return list(data)

    def check_adversarial(self, x: np.ndarray) -> None:
        """Reject the batch when feature squeezing flags any row (no-op when not configured)."""
        if self._squeezer is not None and bool(np.any(self._squeezer.detect(x))):
            raise InvalidInput("input rejected by the feature-squeezing detector")


def _load_squeezer(config: InputGuardConfig, model: Any) -> Any:
    try:
        from bastion.adversarial.defenses.feature_squeezing import FeatureSqueezingDetector
        from bastion.models import TorchAdapter
    except ImportError as exc:
        raise DependencyMissing("feature squeezing needs bastion.adversarial (torch)") from exc
    if not isinstance(model, TorchAdapter):
        raise ConfigError("feature squeezing needs a torch model")
    if config.min_value is None or config.max_value is None:
        raise ConfigError("feature squeezing needs [serve.input_guard] min_value and max_value")
    return FeatureSqueezingDetector(
        model=model,
        bit_depth=config.squeeze_bits,
        median_size=config.squeeze_median,
        threshold=config.squeeze_threshold,
        target_fpr=float("nan"),
        clip=(config.min_value, config.max_value),
    )


__all__ = ["InputGuard"]
