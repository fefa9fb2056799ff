"""Model adapters: torch modules, scikit-learn estimators, plain callables and remote endpoints.

Every adapter validates its input (empty batches, wrong shapes, NaN/inf raise
:class:`~bastion.errors.InvalidInput` with one line), works in batches and returns float32 probabilities whose
columns are the class indices ``0 .. n_classes - 1``.

* :class:`TorchAdapter` — white box; the module returns logits. Offers ``loss_gradient`` and the torch-level
  ``logits_tensor`` that bastion's batched attacks use directly.
* :class:`SklearnAdapter` — a fitted classifier (``predict_proba``, else ``decision_function``, else labels).
* :class:`CallableAdapter` — any ``fn(x) -> probabilities | logits | labels``: the black-box seam.
* :class:`RemoteAdapter` — an HTTP endpoint speaking the Open Inference Protocol v2 (KServe / Triton /
  bastion's gateway) as a black box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bastion.errors import DependencyMissing, InvalidInput
from bastion.models.interface import check_input, check_labels

if TYPE_CHECKING:
    import torch

Outputs = Literal["probabilities", "logits", "labels"]
_OUTPUTS: tuple[str, ...] = ("probabilities", "logits", "labels")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the audit/torch extras
        raise DependencyMissing("torch is not installed", hint="pip install 'bastion-ml[torch]'") from exc
    return torch


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input_shape must be a tuple of ints, got {input_shape!r}") from exc
    if not shape or any(d <= 0 for d in shape):
        raise InvalidInput(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    return shape


def _n_classes(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 2:
        raise InvalidInput(f"n_classes must be an integer >= 2, got {n!r}")
    return int(n)


def _normalise(raw: Any, *, n: int, n_classes: int, outputs: str, source: str) -> np.ndarray:
    """Turn a model's raw output into validated probabilities of shape (n, n_classes)."""
    arr = np.asarray(raw)
    if outputs == "labels":
        labels = check_labels(arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr, n, n_classes)
        return _one_hot(labels, n_classes)
    if arr.shape != (n, n_classes):
        raise InvalidInput(f"{source} returned shape {tuple(arr.shape)}, expected ({n}, {n_classes})")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{source} returned NaN or infinite values")
    if outputs == "logits":
        return _softmax(arr)
    if (arr < -1e-4).any():
        raise InvalidInput(
            f"{source} returned negative probabilities (are these logits? use outputs='logits')"
        )
    arr = np.clip(arr, 0.0, None)
    sums = arr.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise InvalidInput(f"{source} returned an all-zero probability row")
    return (arr / sums).astype(np.float32)


class TorchAdapter:
    """A torch ``nn.Module`` that maps ``(N, *input_shape)`` float inputs to ``(N, n_classes)`` logits.

    ``clip_values`` is the valid input range ``(lo, hi)`` (attacks stay inside it). The module is put in eval
    mode for every prediction; training code (adversarial training) switches modes itself.
    """

    label_only = False

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        input_shape: tuple[int, ...] | int,
        n_classes: int,
        clip_values: tuple[float, float] | None = None,
        batch_size: int = 1024,
        device: str = "cpu",
    ) -> None:
        torch = _import_torch()
        if not isinstance(module, torch.nn.Module):
            raise InvalidInput(f"TorchAdapter needs a torch.nn.Module, got {type(module).__name__}")
        if clip_values is not None:
            lo, hi = (float(v) for v in clip_values)
            if not lo < hi:
                raise InvalidInput(f"clip_values must be (lo, hi) with lo < hi, got {clip_values!r}")
            clip_values = (lo, hi)
        if batch_size < 1:
            raise InvalidInput("batch_size must be >= 1")
        self.module = module
        self._input_shape = _shape(input_shape)
        self._n_classes = _n_classes(n_classes)
        self.clip_values = clip_values
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self._checked = False

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def logits_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a torch batch (gradients flow; no validation: the attack's inner loop)."""
        out = self.module(x)
        if not self._checked:
            if out.ndim != 2 or out.shape[1] != self._n_classes:
                raise InvalidInput(
                    f"the module returned shape {tuple(out.shape)}, expected (N, {self._n_classes})"
                )
            self._checked = True
        return out

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        torch = _import_torch()
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Raw logits, float32, computed in batches without gradients."""
        torch = _import_torch()
        arr = check_input(x, self._input_shape)
        self.module.eval()
        parts = []
        with torch.no_grad():
            for i in range(0, arr.shape[0], self.batch_size):
                parts.append(self.logits_tensor(self.to_tensor(arr[i : i + self.batch_size])).float().cpu())
        out = torch.cat(parts).numpy().astype(np.float32)
        if not np.isfinite(out).all():
            raise InvalidInput("the model returned NaN or infinite logits")
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1).astype(np.int64)

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of each example's cross-entropy loss with respect to its input."""
        torch = _import_torch()
        arr = check_input(x, self._input_shape)
        labels = check_labels(y, arr.shape[0], self._n_classes)
        self.module.eval()
        grads = []
        for i in range(0, arr.shape[0], self.batch_size):
            xb = self.to_tensor(arr[i : i + self.batch_size]).requires_grad_(True)
            yb = torch.from_numpy(labels[i : i + self.batch_size]).to(self.device)
            loss = torch.nn.functional.cross_entropy(self.logits_tensor(xb), yb, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            grads.append(grad.detach().cpu())
        return torch.cat(grads).numpy().astype(np.float32)


class SklearnAdapter:
    """A fitted scikit-learn classifier.

    Probabilities come from ``predict_proba``; an estimator without it falls back to a softmax over
    ``decision_function``, and one with neither is label-only (one-hot probabilities, ``label_only = True``).
    ``classes`` keeps the estimator's own labels; bastion's labels are their indices.
    """

    def __init__(self, estimator: Any, *, input_shape: tuple[int, ...] | int | None = None) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise InvalidInput(f"{type(estimator).__name__} is not a scikit-learn classifier (no predict)")
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InvalidInput(f"{type(estimator).__name__} is not fitted or not a classifier (no classes_)")
        self.estimator = estimator
        self.classes = np.asarray(classes)
        self._n_classes = _n_classes(len(self.classes))
        if input_shape is None:
            n_features = getattr(estimator, "n_features_in_", None)
            if n_features is None:
                raise InvalidInput("the estimator does not record n_features_in_: pass input_shape")
            input_shape = (int(n_features),)
        self._input_shape = _shape(input_shape)
        if callable(getattr(estimator, "predict_proba", None)):
            self._mode = "proba"
        elif callable(getattr(estimator, "decision_function", None)):
            self._mode = "decision"
        else:
            self._mode = "labels"
        self.label_only = self._mode == "labels"
        self._index = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(self.classes)}

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def _flat(self, x: np.ndarray) -> np.ndarray:
        arr = check_input(x, self._input_shape)
        return arr.reshape(arr.shape[0], -1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        flat = self._flat(x)
        name = type(self.estimator).__name__
        if self._mode == "proba":
            return _normalise(
                self.estimator.predict_proba(flat),
                n=flat.shape[0],
                n_classes=self._n_classes,
                outputs="probabilities",
                source=name,
            )
        if self._mode == "decision":
            scores = np.asarray(self.estimator.decision_function(flat), dtype=np.float64)
            if scores.ndim == 1:  # binary: one margin for the positive class
                scores = np.stack([-scores, scores], axis=1) / 2.0
            return _normalise(
                scores, n=flat.shape[0], n_classes=self._n_classes, outputs="logits", source=name
            )
        return _one_hot(self._labels(self.estimator.predict(flat)), self._n_classes)

    def _labels(self, raw: Any) -> np.ndarray:
        try:
            return np.array([self._index[v.item() if hasattr(v, "item") else v] for v in raw], dtype=np.int64)
        except KeyError as exc:
            raise InvalidInput(f"the estimator predicted an unknown class {exc}") from exc

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._mode == "labels":
            return self._labels(self.estimator.predict(self._flat(x)))
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)


class CallableAdapter:
    """Any Python callable as a black box: ``fn(x) -> probabilities | logits | labels``.

    ``outputs`` says what ``fn`` returns; with ``"labels"`` the adapter is label-only and ``predict_proba``
    returns one-hot rows. ``batch_size`` (optional) splits large batches into several calls.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        n_classes: int,
        input_shape: tuple[int, ...] | int,
        outputs: Outputs = "probabilities",
        batch_size: int | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidInput(f"CallableAdapter needs a callable, got {type(fn).__name__}")
        if outputs not in _OUTPUTS:
            raise InvalidInput(f"outputs must be one of {', '.join(_OUTPUTS)}, got {outputs!r}")
        if batch_size is not None and batch_size < 1:
            raise InvalidInput("batch_size must be >= 1")
        self.fn = fn
        self._n_classes = _n_classes(n_classes)
        self._input_shape = _shape(input_shape)
        self.outputs: str = outputs
        self.label_only = outputs == "labels"
        self.batch_size = batch_size

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def _call(self, x: np.ndarray) -> np.ndarray:
        return _normalise(
            self.fn(x),
            n=x.shape[0],
            n_classes=self._n_classes,
            outputs=self.outputs,
            source="the model callable",
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        arr = check_input(x, self._input_shape)
        step = self.batch_size or arr.shape[0]
        return np.concatenate([self._call(arr[i : i + step]) for i in range(0, arr.shape[0], step)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)


# The remote adapter lives in its own module (HTTP client and wire format); re-exported here, where users
# have always imported it from. remote.py builds on the helpers above, so this import comes last.
from bastion.models.remote import RemoteAdapter  # noqa: E402


class RawInputAdapter:
    """Queries ``inner`` — an endpoint that takes raw features, e.g. bastion's gateway serving a model that
    stores its preprocessing — with rows given in the model's own input space: each batch is mapped back with
    ``preprocessing.invert`` first (the gateway then scales it once, landing on exactly those rows)."""

    def __init__(self, inner: Any, preprocessing: Any) -> None:
        self.inner = inner
        self.preprocessing = preprocessing

    @property
    def n_classes(self) -> int:
        return int(self.inner.n_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.inner.input_shape)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(x)
        raw = self.preprocessing.invert(arr.reshape(len(arr), -1))
        return np.ascontiguousarray(raw, dtype=np.float32).reshape(arr.shape)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(self._raw(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.predict(self._raw(x)))


__all__ = ["CallableAdapter", "Outputs", "RawInputAdapter", "RemoteAdapter", "SklearnAdapter", "TorchAdapter"]
