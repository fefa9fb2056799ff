"""Built-in datasets for the training recipes, the audits and the demos.

``load_dataset(name)`` returns one of scikit-learn's offline datasets (``digits``, ``breast_cancer``,
``wine``) split into train and test sets with a stratified, seeded split. Features are float32 and labels
int64. Digits pixels are scaled to ``[0, 1]`` (so attacks can use clip values ``(0, 1)``); the tabular sets
are standardised with the mean and standard deviation of the *training* split only.

``load_csv(path, target=...)`` reads a numeric CSV file (header row required) the same way: the target
column's values are mapped to class indices in sorted order, every other column must be numeric.

Every :class:`Dataset` carries ``source_digest``: the SHA-256 of what it was loaded from (the raw arrays of a
built-in dataset, whatever the split seed; the bytes of a CSV file). The privacy ledger keys budgets by it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InvalidInput, NotFound

DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "wine")
MAX_CSV_BYTES = 512 * 1024 * 1024
MIN_ROWS = 10


MAX_FEATURES = 1 << 16


@dataclass(frozen=True)
class Preprocessing:
    """The feature scaling a model was trained with: ``x' = (x - shift) / scale``, per feature.

    Stored with the model (``config.json`` of a ``bastion train`` directory, tensors of an HE model file), so
    every place that feeds the model raw features applies exactly the training split's statistics.
    ``kind`` is ``"standardise"`` (training-split mean and standard deviation) or ``"scale"`` (a constant,
    e.g. digits' pixel range 0–16 → 0–1).
    """

    kind: str
    shift: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("standardise", "scale"):
            raise InvalidInput(f"unknown preprocessing kind {self.kind!r}")
        if not self.shift or len(self.shift) != len(self.scale) or len(self.shift) > MAX_FEATURES:
            raise InvalidInput("preprocessing shift and scale must be non-empty and of equal length")
        if not (np.isfinite(self.shift).all() and np.isfinite(self.scale).all()):
            raise InvalidInput("preprocessing values must be finite")
        if min(self.scale) <= 0:
            raise InvalidInput("preprocessing scale must be positive")

    @property
    def n_features(self) -> int:
        return len(self.shift)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw features ``[n, n_features]`` → the model's input space (float32)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise InvalidInput(
                f"data has {arr.shape[-1] if arr.ndim else 0} features, the model's preprocessing "
                f"expects {self.n_features}"
            )
        out = (arr - np.asarray(self.shift)) / np.asarray(self.scale)
        return np.ascontiguousarray(out, dtype=np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """The model's input space → raw features (float64): what a client of the gateway sends."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise InvalidInput(
                f"data has {arr.shape[-1] if arr.ndim else 0} features, expected {self.n_features}"
            )
        return arr * np.asarray(self.scale) + np.asarray(self.shift)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shift": list(self.shift), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, doc: Any) -> Preprocessing:
        """Parse what :meth:`to_dict` wrote; anything else raises InvalidInput."""
        try:
            return cls(
                kind=str(doc["kind"]),
                shift=tuple(float(v) for v in doc["shift"]),
                scale=tuple(float(v) for v in doc["scale"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed preprocessing record ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for a model: float32 features, int64 labels in ``range(n_classes)``."""

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_features: int
    n_classes: int
    feature_names: tuple[str, ...] = field(default=(), repr=False)
    class_names: tuple[str, ...] = field(default=(), repr=False)
    clip_values: tuple[float, float] | None = None
    source_digest: str = field(default="", repr=False)
    preprocessing: Preprocessing | None = field(default=None, repr=False)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def digest(self) -> str:
        """SHA-256 over the arrays (train then test): identifies exactly the data a model saw."""
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(arr.dtype).encode())
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def _split(
    x: np.ndarray, y: np.ndarray, *, seed: int, test_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise InvalidInput(f"test_size must be in (0, 1), got {test_size}")
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidInput(f"cannot split the data: {exc}") from exc
    return x_tr, x_te, y_tr, y_te


def _standardise(x_tr: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, np.ndarray, Preprocessing]:
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0
    prep = Preprocessing(
        kind="standardise", shift=tuple(float(v) for v in mean), scale=tuple(float(v) for v in std)
    )
    return (x_tr - mean) / std, (x_te - mean) / std, prep


def _finish(
    name: str,
    x_tr: np.ndarray,
    x_te: np.ndarray,
    y_tr: np.ndarray,
    y_te: np.ndarray,
    *,
    n_classes: int,
    feature_names: tuple[str, ...],
    class_names: tuple[str, ...],
    clip_values: tuple[float, float] | None,
    source_digest: str,
    preprocessing: Preprocessing | None = None,
) -> Dataset:
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_tr, dtype=np.float32),
        y_train=np.ascontiguousarray(y_tr, dtype=np.int64),
        x_test=np.ascontiguousarray(x_te, dtype=np.float32),
        y_test=np.ascontiguousarray(y_te, dtype=np.int64),
        n_features=int(x_tr.shape[1]),
        n_classes=n_classes,
        feature_names=feature_names,
        class_names=class_names,
        clip_values=clip_values,
        source_digest=source_digest,
        preprocessing=preprocessing,
    )


def _arrays_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _builtin_bunch(name: str) -> tuple[np.ndarray, np.ndarray, Any]:
    from sklearn import datasets as skd

    loaders = {
        "digits": skd.load_digits,
        "breast_cancer": skd.load_breast_cancer,
        "wine": skd.load_wine,
    }
    if name not in loaders:
        raise NotFound(f"unknown dataset {name!r}", hint=f"built-in datasets: {', '.join(DATASETS)}")
    bunch = loaders[name]()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64), bunch


# the files scikit-learn's loaders read (sklearn/datasets/data/): name -> (file, gzip, header row)
_BUILTIN_FILES = {
    "digits": ("digits.csv.gz", True, False),
    "breast_cancer": ("breast_cancer.csv", False, True),
    "wine": ("wine_data.csv", False, True),
}


def _builtin_arrays_direct(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A built-in dataset's raw features and labels read from the file scikit-learn's loader reads, without
    importing scikit-learn (its import is ~1.5 s of every privacy command that only needs the digest); the
    same arrays to the bit (tests/models/test_recipes.py). ``None`` where the file is not where scikit-learn
    1.4-1.9 keeps it or does not parse as those versions write it: the caller then uses the loader."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    fname, zipped, header = _BUILTIN_FILES[name]
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / fname
    try:
        raw = gzip.decompress(path.read_bytes()) if zipped else path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
        head = lines[0].split(",") if header else None
        table = np.array([line.split(",") for line in lines[1 if header else 0 :] if line], dtype=np.float64)
        if table.ndim != 2 or table.shape[1] < 2:
            return None
        x, y = np.ascontiguousarray(table[:, :-1]), table[:, -1]
        if head is not None and (int(head[0]), int(head[1])) != x.shape:
            return None
        if not np.array_equal(y, np.round(y)):
            return None
    except (OSError, ValueError, IndexError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    return x, y.astype(np.int64)


@functools.lru_cache(maxsize=8)
def builtin_digest(name: str) -> str:
    """SHA-256 (hex) of a built-in dataset's raw features and labels (independent of any split or seed)."""
    if name not in _BUILTIN_FILES:
        raise NotFound(f"unknown dataset {name!r}", hint=f"built-in datasets: {', '.join(DATASETS)}")
    direct = _builtin_arrays_direct(name)
    x, y = direct if direct is not None else _builtin_bunch(name)[:2]
    return _arrays_digest(x, y)


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_dataset(name: str, *, seed: int = 0, test_size: float = 0.25) -> Dataset:
    """Load a built-in dataset (``digits``, ``breast_cancer`` or ``wine``), split and scaled.

    Raises NotFound for an unknown name and InvalidInput for a bad ``test_size``.
    """
    x, y, bunch = _builtin_bunch(name)
    x_tr, x_te, y_tr, y_te = _split(x, y, seed=seed, test_size=test_size)
    clip: tuple[float, float] | None
    if name == "digits":
        x_tr, x_te = x_tr / 16.0, x_te / 16.0
        clip = (0.0, 1.0)
        n = x_tr.shape[1]
        prep = Preprocessing(kind="scale", shift=(0.0,) * n, scale=(16.0,) * n)
    else:
        x_tr, x_te, prep = _standardise(x_tr, x_te)
        clip = None
    feature_names = tuple(str(f) for f in getattr(bunch, "feature_names", ()))
    class_names = tuple(str(c) for c in bunch.target_names)
    return _finish(
        name,
        x_tr,
        x_te,
        y_tr,
        y_te,
        n_classes=len(class_names),
        feature_names=feature_names,
        class_names=class_names,
        clip_values=clip,
        source_digest=_arrays_digest(x, y),
        preprocessing=prep,
    )


def load_csv(
    path: str | Path, *, target: str, seed: int = 0, test_size: float = 0.25, standardise: bool = True
) -> Dataset:
    """Load a numeric CSV file with a header row; ``target`` names the label column.

    Raises NotFound when the file is missing and InvalidInput when it is oversized, empty, has no such
    column, a non-numeric feature, fewer than two classes or too few rows.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such data file: {p}")
    if p.stat().st_size > MAX_CSV_BYTES:
        raise InvalidInput(f"{p}: larger than {MAX_CSV_BYTES} bytes")
    raw = p.read_bytes()
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
        header = next(reader, None)
        rows = [row for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{p}: not a readable CSV file ({exc})") from exc
    if not header:
        raise InvalidInput(f"{p}: empty file (a header row is required)")
    header = [h.strip() for h in header]
    if target not in header:
        raise InvalidInput(f"{p}: no column {target!r}", hint=f"columns: {', '.join(header[:20])}")
    t_idx = header.index(target)
    f_idx = [i for i in range(len(header)) if i != t_idx]
    if not f_idx:
        raise InvalidInput(f"{p}: no feature columns besides {target!r}")
    if len(rows) < MIN_ROWS:
        raise InvalidInput(f"{p}: {len(rows)} data rows, at least {MIN_ROWS} needed")
    x = np.empty((len(rows), len(f_idx)), dtype=np.float64)
    labels: list[str] = []
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InvalidInput(f"{p}: line {r} has {len(row)} fields, expected {len(header)}")
        try:
            x[r - 2] = [float(row[i]) for i in f_idx]
        except ValueError as exc:
            raise InvalidInput(f"{p}: line {r}: non-numeric feature value") from exc
        labels.append(row[t_idx].strip())
    if not np.isfinite(x).all():
        raise InvalidInput(f"{p}: features contain NaN or infinite values")
    classes = sorted(set(labels), key=_label_sort_key)
    if len(classes) < 2:
        raise InvalidInput(f"{p}: the target column {target!r} has fewer than two classes")
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in labels], dtype=np.int64)
    x_tr, x_te, y_tr, y_te = _split(x, y, seed=seed, test_size=test_size)
    prep = None
    if standardise:
        x_tr, x_te, prep = _standardise(x_tr, x_te)
    return _finish(
        p.stem,
        x_tr,
        x_te,
        y_tr,
        y_te,
        n_classes=len(classes),
        feature_names=tuple(header[i] for i in f_idx),
        class_names=tuple(classes),
        clip_values=None,
        source_digest=hashlib.sha256(raw).hexdigest(),
        preprocessing=prep,
    )


def _label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


__all__ = [
    "DATASETS",
    "Dataset",
    "Preprocessing",
    "builtin_digest",
    "file_digest",
    "load_csv",
    "load_dataset",
]
