"""The ModelAdapter seam: one small protocol every capability uses to talk to a model.

A model is anything that maps a batch of inputs ``x`` (shape ``(N, *input_shape)``, float) to class
probabilities. Attacks, defences, watermarks, the gateway and HE inference all take a :class:`ModelAdapter`,
so a torch module, a scikit-learn estimator, a plain Python callable or a remote endpoint can be swapped
without touching them.

* :class:`ModelAdapter` — black box: ``predict`` (labels), ``predict_proba``, ``n_classes``, ``input_shape``.
* :class:`GradientAdapter` — white box: adds ``loss_gradient(x, y)``, the gradient of the per-example
  cross-entropy loss with respect to the input (what gradient attacks need).

Labels are class indices ``0 .. n_classes - 1``: the column of ``predict_proba`` they come from. Every adapter
is held to this contract (shapes, dtypes, rows summing to 1, batching-invariance, one-line ``InvalidInput``
for bad batches, gradients of the input's shape) by tests/conformance/test_model_adapters.py.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from bastion.errors import InvalidInput


@runtime_checkable
class ModelAdapter(Protocol):
    """A classifier seen as a black box."""

    @property
    def n_classes(self) -> int:
        """Number of classes (width of ``predict_proba``)."""
        ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices, shape ``(N,)``, dtype int64."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(N, n_classes)``, float32, rows sum to 1."""
        ...


@runtime_checkable
class GradientAdapter(ModelAdapter, Protocol):
    """A classifier whose input gradients can be read (white box)."""

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """d(cross-entropy of each example)/dx, same shape as ``x``, float32."""
        ...


def supports_gradients(model: object) -> bool:
    """True when ``model`` offers ``loss_gradient`` (white-box attacks can run on it)."""
    return callable(getattr(model, "loss_gradient", None))


def check_input(x: object, input_shape: tuple[int, ...], *, name: str = "x") -> np.ndarray:
    """Validate a batch for a model and return it as a C-contiguous float32 array.

    Raises :class:`~bastion.errors.InvalidInput` with one clear line for an empty batch, a non-numeric array,
    a shape that does not match ``input_shape`` (a flat batch of the right size is reshaped) or NaN/inf
    values.
    """
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} is not an array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InvalidInput(f"{name} is empty: no examples")
    expected = tuple(int(d) for d in input_shape)
    if tuple(arr.shape[1:]) != expected:
        size = int(np.prod(expected)) if expected else 1
        if int(np.prod(arr.shape[1:])) == size and arr.ndim in (2, len(expected) + 1):
            arr = arr.reshape((arr.shape[0], *expected))
        else:
            raise InvalidInput(
                f"{name} has shape {tuple(arr.shape)}, the model expects (N, {', '.join(map(str, expected))})"
            )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} contains NaN or infinite values")
    return arr


def check_labels(y: object, n: int, n_classes: int, *, name: str = "y") -> np.ndarray:
    """Validate integer labels for ``n`` examples of an ``n_classes`` model; returns int64."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == n_classes and arr.shape[0] == n:
        arr = arr.argmax(axis=1)  # one-hot
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInput(f"{name} must hold one label per example ({n}), got shape {tuple(arr.shape)}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise InvalidInput(f"{name} must hold integer class indices")
    elif arr.dtype.kind not in "biu":
        raise InvalidInput(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= n_classes):
        raise InvalidInput(f"{name} has labels outside 0..{n_classes - 1}")
    return out


__all__ = ["GradientAdapter", "ModelAdapter", "check_input", "check_labels", "supports_gradients"]
