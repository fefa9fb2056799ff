"""Loading the model and data an audit runs on, safely.

Model references (:func:`load_model`):

* ``pkg.module:factory`` with ``weights=`` a safetensors file — a torch module built by your factory, weights
  read by :func:`bastion.scan.safe_load` (no pickle);
* a directory in bastion's model format (``config.json`` + ``model.safetensors``, from ``bastion train``);
* a TorchScript file (``.pt``/``.ts``/``.zip``) — refused unless ``trusted_types`` holds
  ``torch.jit.ScriptModule`` (its code runs at load); then read once, scanned, and ``torch.jit.load`` on the
  same bytes;
* a scikit-learn model in skops format (``.skops``) — read once, scanned (schema allow-list), refused if it
  holds any type skops does not trust (unless listed in ``trusted_types``), then loaded from the same bytes
  trusting exactly the checked type list;
* ``http(s)://host:port/v2/models/NAME`` — an Open Inference Protocol v2 endpoint as a black box;
* ``NAME:VERSION`` / ``NAME@ENV`` — a registry version, materialised (decrypted and verified) by the vault.

Data (:func:`load_data`): ``.npz`` with ``x`` and ``y`` (optionally ``member``: 1 for rows the model was
trained on, enabling membership inference), or a CSV file with a header and a ``target`` column. Data files
hold raw features: a bastion model directory (or registry version) that stores its training preprocessing
carries it in :attr:`LoadedModel.preprocessing`, and :func:`to_model_space` applies it once, so the attacks
(and ``--clip``) work in the model's input space. A remote endpoint gets the raw rows (a bastion gateway
applies the model's preprocessing itself).

Size (over ~400 lines): one loader per model form behind :func:`open_model`, each checking the bytes it
loads; kept together so that every way a model enters the audit is read in one place.
"""

from __future__ import annotations

import importlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import DependencyMissing, InvalidInput, NotFound, UnsafeArtifact
from bastion.models.adapters import RemoteAdapter, SklearnAdapter, TorchAdapter
from bastion.models.data import Preprocessing
from bastion.models.interface import ModelAdapter

Trainer = Callable[[np.ndarray, np.ndarray, int], ModelAdapter]
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_REGISTRY = re.compile(r"^[a-z0-9][a-z0-9._-]*(:\d+|@[a-z]+)$")
MAX_DATA_BYTES = 512 * 1024 * 1024
MAX_MODEL_BYTES = 4 * 1024 * 1024 * 1024  # TorchScript/skops files are read into memory once
#: the trusted type that allows TorchScript: its code runs inside ``torch.jit.load`` (issue 19, F3)
TRUST_TORCHSCRIPT = "torch.jit.ScriptModule"


@dataclass(frozen=True)
class AuditData:
    """Evaluation rows ``x``/``y``; ``member`` marks rows the model was trained on (None if unknown)."""

    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    member: np.ndarray | None = field(default=None, repr=False)
    source: str = ""

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to audit, how to train another like it (for shadows and poisoning), and its origin."""

    adapter: ModelAdapter
    kind: str
    reference: str
    trainer: Trainer | None = field(default=None, repr=False)
    registry_ref: str | None = None
    preprocessing: Preprocessing | None = None  # raw features -> the model's input space (stored with it)


def to_model_space(data: AuditData, loaded: LoadedModel) -> AuditData:
    """``data`` (raw features) mapped into the model's input space with its stored preprocessing, once."""
    if loaded.preprocessing is None:
        return data
    flat = data.x.reshape(data.n, -1)
    x = loaded.preprocessing.apply(flat).reshape(data.x.shape)
    if not np.isfinite(x).all():
        raise InvalidInput(f"{data.source}: values out of range for the model's preprocessing")
    return AuditData(x=x, y=data.y, member=data.member, source=data.source)


def load_data(path: str | Path, *, target: str = "target") -> AuditData:
    """Read ``.npz`` (``x``, ``y``, optional ``member``) or CSV (numeric, header, ``target`` column)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such data file: {p}")
    if p.stat().st_size > MAX_DATA_BYTES:
        raise InvalidInput(f"{p}: larger than {MAX_DATA_BYTES} bytes")
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise InvalidInput(f"{p}: not a readable .npz file without pickled objects ({exc})") from exc
        if "x" not in arrays or "y" not in arrays:
            raise InvalidInput(f"{p}: an .npz data file needs arrays 'x' and 'y' (found {sorted(arrays)})")
        x, y = arrays["x"], arrays["y"]
        member = arrays.get("member")
    elif p.suffix.lower() == ".csv":
        x, y = _read_csv(p, target)
        member = None
    else:
        raise InvalidInput(f"{p}: unsupported data format (use .npz with x, y or .csv with a target column)")
    return _check_data(x, y, member, str(p))


def _read_csv(p: Path, target: str) -> tuple[np.ndarray, np.ndarray]:
    import csv

    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{p}: not a readable CSV file ({exc})") from exc
    if not rows:
        raise InvalidInput(f"{p}: empty file")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise InvalidInput(f"{p}: no target column {target!r}", hint=f"columns: {', '.join(header[:20])}")
    t = header.index(target)
    try:
        body = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise InvalidInput(f"{p}: every value must be numeric ({exc})") from exc
    if body.ndim != 2 or body.shape[0] == 0:
        raise InvalidInput(f"{p}: no data rows")
    if body.shape[1] != len(header):
        raise InvalidInput(f"{p}: rows do not match the header")
    return np.delete(body, t, axis=1), body[:, t]


def _check_data(x: Any, y: Any, member: Any, source: str) -> AuditData:
    xa, ya = np.asarray(x), np.asarray(y)
    if xa.size == 0 or xa.ndim < 2 or xa.shape[0] == 0:
        raise InvalidInput(f"{source}: empty data (x needs shape (N, features...) with N > 0)")
    if xa.dtype.kind not in "biuf":
        raise InvalidInput(f"{source}: x must be numeric")
    xa = xa.astype(np.float32)
    if not np.isfinite(xa).all():
        raise InvalidInput(f"{source}: x contains NaN or infinite values")
    if ya.ndim != 1 or ya.shape[0] != xa.shape[0]:
        raise InvalidInput(f"{source}: y must hold one label per row of x ({xa.shape[0]})")
    if ya.dtype.kind == "f" and (not np.isfinite(ya).all() or not np.all(ya == np.round(ya))):
        raise InvalidInput(f"{source}: y must hold integer class labels")
    if ya.dtype.kind not in "biuf":
        raise InvalidInput(f"{source}: y must hold integer class labels")
    ya = ya.astype(np.int64)
    if ya.min() < 0:
        raise InvalidInput(f"{source}: labels must be class indices >= 0")
    flags = None
    if member is not None:
        flags = np.asarray(member).astype(bool)
        if flags.shape != (xa.shape[0],):
            raise InvalidInput(f"{source}: member must hold one flag per row")
    return AuditData(x=xa, y=ya, member=flags, source=source)


# --- models ---
def _torch_trainer(
    factory: Callable[[], Any],
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    clip: tuple[float, float] | None,
    epochs: int = 40,
) -> Trainer:
    """Train a fresh ``factory()`` module with Adam: how shadows and poisoned copies are made."""

    def train(x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        import torch

        torch.manual_seed(seed)
        module = factory()
        gen = torch.Generator()
        gen.manual_seed(seed)
        opt = torch.optim.Adam(module.parameters(), lr=3e-3)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape((x.shape[0], *input_shape)))
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        module.train()
        for _ in range(epochs):
            perm = torch.randperm(xt.shape[0], generator=gen)
            for i in range(0, xt.shape[0], 64):
                idx = perm[i : i + 64]
                loss = torch.nn.functional.cross_entropy(module(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        module.eval()
        return TorchAdapter(module, input_shape=input_shape, n_classes=n_classes, clip_values=clip)

    return train


def _sklearn_trainer(estimator: Any) -> Trainer:
    def train(x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        from sklearn.base import clone

        est = clone(estimator)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        return SklearnAdapter(est.fit(x.reshape(x.shape[0], -1), y))

    return train


def _checked_bytes(path: Path, *, trusted: Sequence[str] = ()) -> bytes:
    """Read ``path`` once and scan those bytes: the caller loads exactly what was checked (no TOCTOU).

    ``trusted`` (types the user reviewed, ``module.Name``) extends the scanner's allow-list for this file;
    :data:`TRUST_TORCHSCRIPT` among them allows TorchScript code (``torch.jit.load`` runs it).
    """
    from bastion.scan import ScanConfig, Verdict, scan_bytes, summary

    if path.stat().st_size > MAX_MODEL_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_MODEL_BYTES} bytes")
    data = path.read_bytes()
    config = ScanConfig(
        extra_allow=tuple(t for t in trusted if t != TRUST_TORCHSCRIPT),
        unsafe_allow_torchscript=TRUST_TORCHSCRIPT in trusted,
    )
    report = scan_bytes(data, name=str(path), config=config)
    if report.verdict is not Verdict.safe:
        code = any(i.rule == "torchscript-code" for i in report.issues)
        hint = f"TorchScript runs code at load: review it, then --unsafe-trust-type {TRUST_TORCHSCRIPT}"
        raise UnsafeArtifact(f"unsafe artifact: {summary(report)}", hint=hint if code else None)
    return data


def _load_skops(p: Path, *, trusted_types: Sequence[str], reference: str) -> LoadedModel:
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is in the audit extra
        raise DependencyMissing("skops is not installed", hint="pip install 'bastion-ml[audit]'") from exc
    data = _checked_bytes(p, trusted=trusted_types)
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise InvalidInput(f"{p}: not a readable skops file ({type(exc).__name__})") from exc
    from bastion.scan import allow_listed

    # types on bastion's generated allow-list are trusted; anything else needs the user's review
    untrusted = {t for t in found if not allow_listed(t)} - set(trusted_types)
    if untrusted:
        raise UnsafeArtifact(
            f"{p}: skops file holds untrusted types: {', '.join(sorted(untrusted)[:5])}",
            hint="review them, then pass --unsafe-trust-type for each",
        )
    # the very bytes that were checked, trusting exactly the list that was checked
    estimator = sio.loads(data, trusted=sorted(found))
    return LoadedModel(
        adapter=SklearnAdapter(estimator),
        kind="sklearn",
        reference=reference,
        trainer=_sklearn_trainer(estimator),
    )


def _load_factory(
    ref: str,
    weights: str | Path | None,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    clip: tuple[float, float] | None,
) -> LoadedModel:
    if weights is None:
        raise InvalidInput(f"{ref}: a module:factory model needs --weights (a .safetensors file)")
    module_name, attr = ref.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise NotFound(
            f"cannot import the model factory {ref} ({type(exc).__name__}: {exc})",
            hint="run from the directory that holds the package, or add it to PYTHONPATH",
        ) from exc
    if not callable(factory):
        raise InvalidInput(f"{ref} is not callable")
    from bastion.scan import safe_load

    state = safe_load(weights)
    if not isinstance(state, dict):
        raise InvalidInput(f"{weights}: expected a mapping of tensor names to tensors")
    module = factory()
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"{weights}: weights do not fit {ref}() ({type(exc).__name__})") from exc
    module.eval()
    adapter = TorchAdapter(module, input_shape=input_shape, n_classes=n_classes, clip_values=clip)
    trainer = _torch_trainer(factory, input_shape=input_shape, n_classes=n_classes, clip=clip)
    return LoadedModel(adapter=adapter, kind="torch", reference=ref, trainer=trainer)


def _load_path(
    p: Path,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    clip: tuple[float, float] | None,
    trusted_types: Sequence[str],
    reference: str,
) -> LoadedModel:
    if p.is_dir():
        cfg = p / "config.json"
        if cfg.is_file() and (p / "model.safetensors").is_file():
            from bastion.models.recipes import build_mlp, load_model

            loaded = load_model(p)
            arch = loaded.config
            adapter = TorchAdapter(
                loaded.module, input_shape=input_shape, n_classes=arch.n_classes, clip_values=clip
            )

            def factory() -> Any:
                return build_mlp(n_features=arch.n_features, n_classes=arch.n_classes, hidden=arch.hidden)

            trainer = _torch_trainer(factory, input_shape=input_shape, n_classes=arch.n_classes, clip=clip)
            return LoadedModel(
                adapter=adapter,
                kind="torch",
                reference=reference,
                trainer=trainer,
                preprocessing=loaded.preprocessing,
            )
        files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
        candidates = [f for f in files if f.suffix.lower() in (".skops", ".pt", ".ts", ".zip", ".pth")]
        if len(candidates) == 1:
            return _load_path(
                candidates[0],
                input_shape=input_shape,
                n_classes=n_classes,
                clip=clip,
                trusted_types=trusted_types,
                reference=reference,
            )
        raise InvalidInput(
            f"{p}: no single model file found (expected a bastion model, .skops or TorchScript)"
        )
    suffix = p.suffix.lower()
    if suffix == ".skops":
        return _load_skops(p, trusted_types=trusted_types, reference=reference)
    if suffix in (".pt", ".ts", ".zip", ".pth"):
        import torch

        data = _checked_bytes(p, trusted=trusted_types)  # scanned and loaded from the same private bytes
        try:
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:
            raise InvalidInput(
                f"{p}: not a TorchScript archive ({type(exc).__name__})",
                hint="torch models: save TorchScript, or give module:factory with safetensors weights",
            ) from exc
        module.eval()
        adapter = TorchAdapter(module, input_shape=input_shape, n_classes=n_classes, clip_values=clip)
        return LoadedModel(adapter=adapter, kind="torchscript", reference=reference)
    raise InvalidInput(
        f"{p}: unsupported model type {suffix or '(no extension)'}",
        hint="use module:factory + .safetensors, TorchScript, .skops, a bastion model directory, "
        "an http(s) endpoint or a registry NAME:VERSION",
    )


@contextmanager
def open_model(
    ref: str,
    *,
    input_shape: Sequence[int],
    n_classes: int,
    weights: str | Path | None = None,
    clip_values: tuple[float, float] | None = None,
    trusted_types: Sequence[str] = (),
    vault: Any = None,
    headers: dict[str, str] | None = None,
) -> Iterator[LoadedModel]:
    """Open the model behind ``ref`` (see the module docstring); registry versions need ``vault``.

    A context manager because registry versions are decrypted into a temporary directory for loading.
    """
    shape = tuple(int(d) for d in input_shape)
    if ref.startswith(("http://", "https://")):
        m = re.match(r"^(https?://[^/]+)(?:/v2/models/([^/]+))?/?$", ref)
        if not m or not m.group(2):
            raise InvalidInput("endpoint references look like http(s)://host:port/v2/models/NAME")
        adapter = RemoteAdapter(
            m.group(1),
            model=m.group(2),
            n_classes=n_classes,
            input_shape=shape,
            headers=headers,
            clip_values=clip_values,
        )
        try:
            yield LoadedModel(adapter=adapter, kind="remote", reference=ref)
        finally:
            adapter.close()
        return
    path = Path(ref)
    if path.exists():
        yield _load_path(
            path,
            input_shape=shape,
            n_classes=n_classes,
            clip=clip_values,
            trusted_types=trusted_types,
            reference=ref,
        )
        return
    if _REGISTRY.match(ref):
        if vault is None:
            raise InvalidInput(f"{ref} is a registry reference: open the vault (a project home) to audit it")
        with vault.materialize(ref) as directory:
            loaded = _load_path(
                Path(directory),
                input_shape=shape,
                n_classes=n_classes,
                clip=clip_values,
                trusted_types=trusted_types,
                reference=ref,
            )
        yield LoadedModel(
            adapter=loaded.adapter,
            kind=loaded.kind,
            reference=ref,
            trainer=loaded.trainer,
            registry_ref=ref,
            preprocessing=loaded.preprocessing,
        )
        return
    if _FACTORY.match(ref):
        yield _load_factory(ref, weights, input_shape=shape, n_classes=n_classes, clip=clip_values)
        return
    raise NotFound(f"model {ref!r}: no such file, registry reference or module:factory")


def is_registry_ref(ref: str) -> bool:
    """``ref`` reads as a registry reference (``name:3`` or ``name@env``), whatever exists on disk."""
    return bool(_REGISTRY.match(ref))


def is_factory_ref(ref: str) -> bool:
    """``ref`` reads as a ``package.module:factory`` reference, whatever exists on disk."""
    return bool(_FACTORY.match(ref))


def describe_model(loaded: LoadedModel) -> dict[str, Any]:
    a = loaded.adapter
    return {
        "reference": loaded.reference,
        "kind": loaded.kind,
        "input_shape": list(a.input_shape),
        "n_classes": a.n_classes,
        "white_box": isinstance(a, TorchAdapter),
        "registry_ref": loaded.registry_ref,
        "preprocessing": loaded.preprocessing.kind if loaded.preprocessing is not None else None,
    }


__all__ = [
    "AuditData",
    "LoadedModel",
    "Trainer",
    "describe_model",
    "is_factory_ref",
    "is_registry_ref",
    "load_data",
    "open_model",
    "to_model_space",
]
