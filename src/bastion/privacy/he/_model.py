"""Models that can be evaluated on CKKS ciphertexts: linear layers with square activations between them.

CKKS adds and multiplies; it cannot compare, so ReLU and sigmoid are out. A logistic regression is one linear
layer (the client takes the sign of the decrypted logit, or the argmax for several classes); a small MLP uses
``x ↦ x²`` as its activation (Gilad-Bachrach et al. 2016, CryptoNets) and is trained with it
(:func:`train_poly_mlp`).

Sources accepted by :func:`load_he_model`: a ``bastion train`` model directory (``bastion-mlp`` with no hidden
layer, i.e. a linear model), a safetensors file written by :func:`save_he_model` or by ``bastion federate``
(``bastion-linear``), and a scikit-learn ``LogisticRegression`` saved with skops (only that type is trusted).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import DependencyMissing, InvalidInput, NotFound
from bastion.models.data import Preprocessing

ACTIVATIONS = ("none", "square")
HE_FORMAT = "bastion-he-mlp"
LINEAR_FORMAT = "bastion-linear"
MLP_FORMAT = "bastion-mlp"
MAX_MODEL_BYTES = 64 * 1024 * 1024
TRUSTED_SKOPS_TYPES = ("sklearn.linear_model._logistic.LogisticRegression",)


@dataclass(frozen=True, eq=False)
class HEModel:
    """Linear layers ``(weight [out, in], bias [out])`` with ``activation`` between consecutive layers."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    activation: str = "none"
    preprocessing: Preprocessing | None = None  # raw features -> the model's input (stored with the model)

    def __post_init__(self) -> None:
        if not self.layers:
            raise InvalidInput("a model needs at least one linear layer")
        if self.activation not in ACTIVATIONS:
            raise InvalidInput(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if len(self.layers) > 1 and self.activation == "none":
            raise InvalidInput("stacked linear layers need a polynomial activation between them")
        width = None
        for weight, bias in self.layers:
            if weight.ndim != 2 or bias.shape != (weight.shape[0],):
                raise InvalidInput("each layer needs weight [out, in] and bias [out]")
            if width is not None and weight.shape[1] != width:
                raise InvalidInput("layer widths do not chain")
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                raise InvalidInput("model weights must be finite")
            width = weight.shape[0]
        if self.preprocessing is not None and self.preprocessing.n_features != self.layers[0][0].shape[1]:
            raise InvalidInput("the stored preprocessing does not match the model's input width")

    @property
    def n_features(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.layers[-1][0].shape[0])

    @property
    def n_classes(self) -> int:
        return 2 if self.n_outputs == 1 else self.n_outputs

    @property
    def depth(self) -> int:
        """Multiplicative depth: one level per linear layer and one per square."""
        return len(self.layers) + (len(self.layers) - 1 if self.activation == "square" else 0)

    @property
    def kind(self) -> str:
        return "linear" if len(self.layers) == 1 else "mlp"

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Plaintext reference: what the encrypted pipeline must reproduce."""
        h = np.asarray(x, dtype=np.float64)
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1 and self.activation == "square":
                h = h * h
        return h

    def labels_from_logits(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits)
        if z.shape[1] == 1:
            return (z[:, 0] > 0).astype(np.int64)
        return z.argmax(axis=1).astype(np.int64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.labels_from_logits(self.logits(x))


def model_from_linear(weight: Any, bias: Any) -> HEModel:
    """A linear (logistic) model from a weight matrix ``[out, in]`` (or vector) and a bias."""
    w = np.atleast_2d(np.asarray(weight, dtype=np.float64))
    b = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    return HEModel(layers=((w, b),))


def model_from_sklearn(estimator: Any) -> HEModel:
    """A fitted scikit-learn linear classifier (``coef_``/``intercept_``), e.g. LogisticRegression."""
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if coef is None or intercept is None:
        raise InvalidInput(f"{type(estimator).__name__} is not a fitted linear classifier")
    return model_from_linear(coef, intercept)


def model_from_torch(module: Any) -> HEModel:
    """A torch ``nn.Linear``, or an ``nn.Sequential`` of Linear layers with :class:`Square` between them."""
    from torch import nn

    layers: list[tuple[np.ndarray, np.ndarray]] = []
    activation = "none"
    mods = list(module) if isinstance(module, nn.Sequential) else [module]
    for mod in mods:
        if isinstance(mod, nn.Linear):
            w = mod.weight.detach().cpu().double().numpy()
            b = (
                mod.bias.detach().cpu().double().numpy()
                if mod.bias is not None
                else np.zeros(w.shape[0], dtype=np.float64)
            )
            layers.append((w, b))
        elif type(mod).__name__ == "Square":
            activation = "square"
        else:
            raise InvalidInput(
                f"layer {type(mod).__name__} cannot run under CKKS",
                hint="use Linear layers with a square activation (train_poly_mlp)",
            )
    return HEModel(layers=tuple(layers), activation=activation)


def _linear_keys(tensors: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """Pairs (weight key, bias key) in layer order, for keys like ``0.weight`` or ``layers.2.weight``."""
    pairs = []
    for key in tensors:
        if key.endswith("weight") and tensors[key].ndim == 2:
            prefix = key[: -len("weight")]
            nums = [int(n) for n in re.findall(r"\d+", prefix)]
            pairs.append((nums, key, prefix + "bias"))
    pairs.sort(key=lambda p: p[0])
    return [(w, b) for _, w, b in pairs]


def _preprocessing_from(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> Preprocessing | None:
    if "preprocessing.shift" not in tensors and "preprocessing.scale" not in tensors:
        return None
    try:
        shift, scale = tensors["preprocessing.shift"], tensors["preprocessing.scale"]
    except KeyError as exc:
        raise InvalidInput("the model file has half a preprocessing record") from exc
    return Preprocessing(
        kind=meta.get("preprocessing", "standardise"),
        shift=tuple(float(v) for v in np.asarray(shift).ravel()),
        scale=tuple(float(v) for v in np.asarray(scale).ravel()),
    )


def _from_tensors(
    tensors: dict[str, np.ndarray], activation: str, preprocessing: Preprocessing | None = None
) -> HEModel:
    layers = []
    for wkey, bkey in _linear_keys(tensors):
        w = np.asarray(tensors[wkey], dtype=np.float64)
        b = (
            np.asarray(tensors[bkey], dtype=np.float64)
            if bkey in tensors
            else np.zeros(w.shape[0], dtype=np.float64)
        )
        layers.append((w, b))
    if not layers:
        raise InvalidInput("no linear layer found in the weights")
    return HEModel(layers=tuple(layers), activation=activation, preprocessing=preprocessing)


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError as exc:
        raise DependencyMissing("safetensors is needed to read this model") from exc
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_MODEL_BYTES} bytes")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not a readable safetensors file") from exc
    return tensors, meta


def load_he_model(path: str | Path) -> HEModel:
    """Load a model for encrypted inference from a file or a ``bastion train`` directory (see module doc)."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"no such model: {p}")
    if p.is_dir():
        cfg_path = p / "config.json"
        if not cfg_path.is_file():
            raise InvalidInput(f"{p}: not a bastion model directory (no config.json)")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{cfg_path}: not valid JSON") from exc
        if not isinstance(cfg, dict) or cfg.get("format") != MLP_FORMAT:
            raise InvalidInput(f"{cfg_path}: unknown model format")
        arch = cfg.get("config", cfg.get("architecture", {}))
        hidden = arch.get("hidden", []) if isinstance(arch, dict) else []
        if hidden:
            raise InvalidInput(
                f"{p}: an MLP with ReLU activations cannot be evaluated under CKKS",
                hint="train a linear model (no hidden layer) or use --dataset NAME --arch mlp",
            )
        tensors, _ = _read_safetensors(p / "model.safetensors")
        prep = Preprocessing.from_dict(cfg["preprocessing"]) if "preprocessing" in cfg else None
        return _from_tensors(tensors, "none", prep)
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        tensors, meta = _read_safetensors(p)
        fmt = meta.get("format", "")
        if fmt in (HE_FORMAT, LINEAR_FORMAT):
            return _from_tensors(tensors, meta.get("activation", "none"), _preprocessing_from(tensors, meta))
        if fmt == MLP_FORMAT:
            raise InvalidInput(f"{p}: pass the model directory (with config.json), not its weights file")
        raise InvalidInput(f"{p}: unknown safetensors model format {fmt!r}")
    if suffix == ".skops":
        return _load_skops(p)
    raise InvalidInput(f"{p}: unsupported model file (expected a directory, .safetensors or .skops)")


def _load_skops(path: Path) -> HEModel:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise DependencyMissing("skops is needed to read .skops models") from exc
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_MODEL_BYTES} bytes")
    try:
        untrusted = sio.get_untrusted_types(file=str(path))
        refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
        if refused:
            raise InvalidInput(f"{path}: refusing untrusted types: {', '.join(refused[:5])}")
        estimator = sio.load(str(path), trusted=list(untrusted))
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"{path}: not a readable skops file ({type(exc).__name__})") from exc
    from sklearn.linear_model import LogisticRegression

    if type(estimator) is not LogisticRegression:
        raise InvalidInput(f"{path}: only a LogisticRegression is accepted, found {type(estimator).__name__}")
    return model_from_sklearn(estimator)


def save_he_model(model: HEModel, path: str | Path) -> Path:
    """Write the model as safetensors (``format = bastion-he-mlp``); nothing is pickled."""
    from safetensors.numpy import save_file

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    for i, (weight, bias) in enumerate(model.layers):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(weight, dtype=np.float64)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(bias, dtype=np.float64)
    meta = {"format": HE_FORMAT, "activation": model.activation}
    if model.preprocessing is not None:
        tensors["preprocessing.shift"] = np.asarray(model.preprocessing.shift, dtype=np.float64)
        tensors["preprocessing.scale"] = np.asarray(model.preprocessing.scale, dtype=np.float64)
        meta["preprocessing"] = model.preprocessing.kind
    save_file(tensors, str(out), metadata=meta)
    return out


def train_logistic(*, x: np.ndarray, y: np.ndarray, seed: int = 0) -> HEModel:
    """A scikit-learn LogisticRegression fitted on (x, y), as an HEModel."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(x, y)
    return model_from_sklearn(clf)


def train_poly_mlp(
    *,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    hidden: int = 32,
    epochs: int = 60,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> HEModel:
    """Train ``Linear → x² → Linear`` with Adam (torch); the square keeps it evaluable under CKKS."""
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise DependencyMissing(
            "torch is needed to train the MLP", hint="pip install 'bastion-ml[torch]'"
        ) from exc

    class Square(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t * t

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), Square(), nn.Linear(hidden, n_classes))
    with torch.no_grad():  # small first-layer weights keep x² in a range CKKS handles precisely
        first = net[0]
        assert isinstance(first, nn.Linear)
        first.weight.mul_(0.5)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=gen)
        for start in range(0, len(yt), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])  # type: ignore[operator]
            loss.backward()
            opt.step()
    net.eval()
    return model_from_torch(net)


MAX_DATA_BYTES = 256 * 1024 * 1024


def load_data_file(path: str | Path, *, target: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read inference data: ``.npz`` with array ``x`` (and optional ``y``), or a numeric CSV with a header row
    (``target`` names the label column, if any). Raises NotFound / InvalidInput."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such data file: {p}")
    if p.stat().st_size > MAX_DATA_BYTES:
        raise InvalidInput(f"{p}: larger than {MAX_DATA_BYTES} bytes")
    y: np.ndarray | None = None
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as npz:
                if "x" not in npz:
                    raise InvalidInput(f"{p}: no array named 'x'")
                x = np.asarray(npz["x"], dtype=np.float64)
                if "y" in npz:
                    y = np.asarray(npz["y"]).astype(np.int64)
        except (ValueError, OSError) as exc:
            raise InvalidInput(f"{p}: not a readable .npz file") from exc
    else:
        import csv

        try:
            with p.open(newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh) if r]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidInput(f"{p}: not a readable CSV file") from exc
        if len(rows) < 2:
            raise InvalidInput(f"{p}: a header row and at least one data row are needed")
        header = [h.strip() for h in rows[0]]
        cols = list(range(len(header)))
        if target is not None:
            if target not in header:
                raise InvalidInput(f"{p}: no column {target!r}")
            cols.remove(header.index(target))
        try:
            data = np.asarray([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
        except ValueError as exc:
            raise InvalidInput(f"{p}: non-numeric value") from exc
        if data.ndim != 2 or data.shape[1] != len(header):
            raise InvalidInput(f"{p}: rows have different numbers of fields")
        x = data[:, cols]
        if target is not None:
            y = data[:, header.index(target)].astype(np.int64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidInput(f"{p}: x must be a non-empty 2-D array")
    if not np.isfinite(x).all():
        raise InvalidInput(f"{p}: features contain NaN or infinite values")
    if y is not None and len(y) != len(x):
        raise InvalidInput(f"{p}: x and y differ in length")
    return x, y
