"""Built-in training recipes: a small MLP for tabular data and small images, a training loop with hooks,
evaluation, and a pickle-free model format (safetensors weights + a JSON config).

The loop is deliberately plain so that other capabilities can plug into it:

* ``optimizer=`` / ``data_loader=`` accept wrapped objects (the DP-SGD wrapper passes Opacus' optimizer and
  Poisson-sampled loader, ``model`` may be a ``GradSampleModule``);
* ``hooks=`` take :class:`TrainingHook` objects whose ``on_batch(model, x, y) -> (x, y)`` may return a changed
  or extended batch (the watermark embeds its trigger set this way).

Saved models are a directory with ``model.safetensors`` and ``config.json`` (``format: bastion-mlp``), so the
scanner accepts them and nothing is unpickled to load them.

Length: building, training, saving and loading the one MLP recipe share ``MlpConfig`` and the safetensors
header check that bounds it; they stay together so the bounds are checked in one place.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from bastion.errors import InvalidInput, NotFound
from bastion.models.data import DATASETS, Dataset, Preprocessing, load_csv, load_dataset

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

MODEL_FORMAT = "bastion-mlp"
MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 1 << 20
#: bounds of a built-in MLP (a config is untrusted input: it decides what ``build_mlp`` allocates)
MAX_WIDTH = 1 << 16
MAX_LAYERS = 64
MAX_PARAMETERS = 1 << 28
_MAX_HEADER = 100 << 20  # safetensors' own header limit
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


@dataclass(frozen=True)
class MlpConfig:
    """Architecture of a built-in MLP: ``Linear → ReLU`` for each hidden width, then a ``Linear`` head."""

    n_features: int
    n_classes: int
    hidden: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        if self.n_features < 1:
            raise InvalidInput(f"n_features must be ≥ 1, got {self.n_features}")
        if self.n_classes < 2:
            raise InvalidInput(f"n_classes must be ≥ 2, got {self.n_classes}")
        if any(int(h) < 1 for h in self.hidden):
            raise InvalidInput(f"hidden widths must be ≥ 1, got {self.hidden}")
        widths = (self.n_features, *self.hidden, self.n_classes)
        if max(widths) > MAX_WIDTH or len(self.hidden) > MAX_LAYERS:
            raise InvalidInput(f"an MLP has at most {MAX_LAYERS} hidden layers of width ≤ {MAX_WIDTH}")
        if sum(n for _, n in self.shapes().values()) > MAX_PARAMETERS:
            raise InvalidInput(f"an MLP has at most {MAX_PARAMETERS} parameters")

    def shapes(self) -> dict[str, tuple[tuple[int, ...], int]]:
        """The state dict ``build_mlp`` makes: name -> (shape, element count)."""
        out: dict[str, tuple[tuple[int, ...], int]] = {}
        widths = (self.n_features, *self.hidden, self.n_classes)
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            out[f"{2 * i}.weight"] = ((n_out, n_in), n_out * n_in)
            out[f"{2 * i}.bias"] = ((n_out,), n_out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "n_classes": self.n_classes, "hidden": list(self.hidden)}


def build_mlp(
    *, n_features: int, n_classes: int, hidden: Sequence[int] = (64,), seed: int | None = None
) -> nn.Sequential:
    """A ``torch.nn.Sequential`` MLP (Opacus-compatible: only Linear and ReLU layers)."""
    import torch
    from torch import nn

    cfg = MlpConfig(
        n_features=int(n_features), n_classes=int(n_classes), hidden=tuple(int(h) for h in hidden)
    )
    if seed is not None:
        torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = cfg.n_features
    for h in cfg.hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, cfg.n_classes))
    return nn.Sequential(*layers)


@runtime_checkable
class TrainingHook(Protocol):
    """Called on every batch before the forward pass; returns the batch to train on (possibly extended)."""

    def on_batch(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` — unchanged, modified or with extra examples appended."""
        ...


@dataclass(frozen=True)
class TrainResult:
    """What one training run did. ``accuracy`` is on the dataset's test split."""

    accuracy: float
    train_accuracy: float
    final_loss: float
    epochs: int
    steps: int
    seconds: float
    epoch_seconds: tuple[float, ...] = field(default=())


def make_loader(
    x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int = 0, shuffle: bool = True
) -> DataLoader[Any]:
    """A seeded ``DataLoader`` over numpy arrays (float32 features, int64 labels)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    if batch_size < 1:
        raise InvalidInput(f"batch_size must be ≥ 1, got {batch_size}")
    if len(x) != len(y) or len(x) == 0:
        raise InvalidInput("features and labels must be non-empty and of equal length")
    ds = TensorDataset(
        torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.int64))
    )
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen)


def train_model(
    *,
    model: nn.Module,
    dataset: Dataset,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
    hooks: Sequence[TrainingHook] = (),
    optimizer: torch.optim.Optimizer | None = None,
    data_loader: DataLoader[Any] | None = None,
) -> TrainResult:
    """Train ``model`` with cross-entropy on ``dataset``'s training split, then evaluate on its test split.

    Without ``optimizer`` an SGD optimiser (momentum 0.9) with ``lr`` is used; without ``data_loader`` a
    shuffled, seeded loader with ``batch_size``. Raises InvalidInput for non-positive epochs or rates.
    """
    import torch
    from torch import nn

    if epochs < 1:
        raise InvalidInput(f"epochs must be ≥ 1, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise InvalidInput(f"lr must be a positive number, got {lr}")
    torch.manual_seed(seed)
    loader = (
        data_loader
        if data_loader is not None
        else make_loader(dataset.x_train, dataset.y_train, batch_size=batch_size, seed=seed)
    )
    opt = optimizer if optimizer is not None else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    epoch_seconds: list[float] = []
    start = time.perf_counter()
    model.train()
    with warnings.catch_warnings():
        # Opacus' per-sample-gradient hooks warn that the input needs no gradient: expected, not a problem.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        steps, last_loss = _loop(model, loader, opt, criterion, hooks, epochs, epoch_seconds)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(
        accuracy=evaluate(model, dataset.x_test, dataset.y_test),
        train_accuracy=evaluate(model, dataset.x_train, dataset.y_train),
        final_loss=last_loss,
        epochs=epochs,
        steps=steps,
        seconds=seconds,
        epoch_seconds=tuple(epoch_seconds),
    )


def _loop(
    model: nn.Module,
    loader: Any,
    opt: torch.optim.Optimizer,
    criterion: nn.Module,
    hooks: Sequence[TrainingHook],
    epochs: int,
    epoch_seconds: list[float],
) -> tuple[int, float]:
    steps = 0
    last_loss = float("nan")
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in loader:
            for hook in hooks:
                xb, yb = hook.on_batch(model, xb, yb)
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            # An empty Poisson batch still takes a (noise-only) DP step so the accounting stays exact.
            loss = criterion(out, yb) if len(yb) else out.sum() * 0.0
            loss.backward()
            opt.step()
            steps += 1
            if len(yb):
                last_loss = float(loss.detach())
        epoch_seconds.append(time.perf_counter() - t0)
    return steps, last_loss


def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    """Logits of ``model`` on ``x`` (float32 numpy), computed without gradients in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    outs: list[np.ndarray] = []
    with torch.no_grad():
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        for i in range(0, len(xt), batch_size):
            outs.append(model(xt[i : i + batch_size]).detach().cpu().numpy())
    if was_training:
        model.train()
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs, axis=0)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``model`` on ``(x, y)`` as a float in [0, 1]."""
    if len(x) == 0:
        raise InvalidInput("cannot evaluate on an empty set")
    pred = predict_logits(model, x).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())


def unwrap_module(model: nn.Module) -> nn.Module:
    """The plain module inside an Opacus ``GradSampleModule`` (or the module itself)."""
    inner = getattr(model, "_module", None)
    return inner if inner is not None else model


@dataclass(frozen=True)
class LoadedModel:
    """A model read back from disk: the module (eval mode), its architecture and the saved metadata."""

    module: nn.Module
    config: MlpConfig
    metadata: Mapping[str, Any]
    preprocessing: Preprocessing | None = None


def save_model(
    model: nn.Module,
    directory: str | Path,
    *,
    config: MlpConfig,
    metadata: Mapping[str, Any] | None = None,
    preprocessing: Preprocessing | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created) and return it.

    ``metadata`` must be JSON-serialisable (training figures such as ε, δ, accuracy). ``preprocessing`` (the
    training data's feature scaling) is stored beside the architecture, so the signed directory says how raw
    features become the model's input.
    """
    from safetensors.torch import save

    from bastion.files import atomic_write

    out = Path(directory)
    _private_dir(out)
    module = unwrap_module(model)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    weights = save(state, metadata={"format": MODEL_FORMAT})
    doc = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": config.to_dict(),
        "metadata": dict(metadata or {}),
    }
    if preprocessing is not None:
        if preprocessing.n_features != config.n_features:
            raise InvalidInput(
                f"preprocessing covers {preprocessing.n_features} features, the model has {config.n_features}"
            )
        doc["preprocessing"] = preprocessing.to_dict()
    try:
        text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"model metadata is not JSON-serialisable: {exc}") from exc
    # a fresh private file (0600) renamed over the name: a link planted at it is replaced, never followed
    atomic_write(out / WEIGHTS_FILE, weights, mode=0o600)
    atomic_write(out / CONFIG_FILE, (text + "\n").encode("utf-8"), mode=0o600)
    return out


def _private_dir(out: Path) -> None:
    """Create ``out`` and missing parents with mode 0700 (whatever the umask); an existing ``out`` must be a
    real directory, not a symbolic link."""
    missing = [p for p in (out, *out.parents) if not os.path.lexists(p)]
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise InvalidInput(f"cannot create the model directory {path} ({exc.strerror})") from exc
    st = os.lstat(out)
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{out} is not a directory (a symbolic link or a file): give a new directory")


def _check_header(path: Path, config: MlpConfig) -> None:
    """The safetensors header (only the header is read) names exactly the config's tensors and shapes, each
    stored in the file: the module built for the config is then no larger than the weights file."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= _MAX_HEADER:
            raise InvalidInput(f"{path}: not a safetensors file")
        raw = fh.read(n)
        data_size = os.fstat(fh.fileno()).st_size - 8 - n
    try:
        header = json.loads(raw)
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        expected = config.shapes()
        if set(tensors) != set(expected):
            raise InvalidInput(f"{path}: weights do not match the config (tensor names differ)")
        for name, (shape, count) in expected.items():
            info = tensors[name]
            start, end = info["data_offsets"]
            size = _DTYPE_BYTES.get(info["dtype"], 0)
            if (
                tuple(info["shape"]) != shape
                or not size
                or end - start != count * size
                or not 0 <= start <= end <= data_size
            ):
                raise InvalidInput(f"{path}: weights do not match the config ({name})")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path}: malformed safetensors header ({type(exc).__name__})") from exc


def load_model(directory: str | Path) -> LoadedModel:
    """Load a model saved by :func:`save_model` (no pickle). Raises NotFound / InvalidInput."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory)
    cfg_path, w_path = root / CONFIG_FILE, root / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise NotFound(f"{root}: not a bastion model directory ({CONFIG_FILE} and {WEIGHTS_FILE} expected)")
    if cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise InvalidInput(f"{cfg_path}: config too large")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
        if doc.get("format") != MODEL_FORMAT or doc.get("format_version") != MODEL_FORMAT_VERSION:
            raise InvalidInput(f"{cfg_path}: unsupported model format {doc.get('format')!r}")
        arch = doc["architecture"]
        config = MlpConfig(
            n_features=int(arch["n_features"]),
            n_classes=int(arch["n_classes"]),
            hidden=tuple(int(h) for h in arch["hidden"]),
        )
        metadata = doc.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidInput(f"{cfg_path}: metadata must be an object")
        prep = Preprocessing.from_dict(doc["preprocessing"]) if "preprocessing" in doc else None
        if prep is not None and prep.n_features != config.n_features:
            raise InvalidInput(
                f"{cfg_path}: preprocessing does not match the model's {config.n_features} features"
            )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{cfg_path}: malformed model config ({type(exc).__name__})") from exc
    _check_header(w_path, config)  # before anything is allocated for the config
    module = build_mlp(n_features=config.n_features, n_classes=config.n_classes, hidden=config.hidden)
    try:
        state = load_file(str(w_path))
        module.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise InvalidInput(f"{w_path}: weights do not match the config ({type(exc).__name__})") from exc
    module.eval()
    return LoadedModel(module=module, config=config, metadata=metadata, preprocessing=prep)


__all__ = [
    "CONFIG_FILE",
    "DATASETS",
    "MODEL_FORMAT",
    "WEIGHTS_FILE",
    "Dataset",
    "LoadedModel",
    "MlpConfig",
    "TrainResult",
    "TrainingHook",
    "build_mlp",
    "evaluate",
    "load_csv",
    "load_dataset",
    "load_model",
    "make_loader",
    "predict_logits",
    "save_model",
    "train_model",
    "unwrap_module",
]
