"""Building a gateway's :class:`~bastion.serve.drift.DriftMonitor` from ``[serve.drift]``: the training
reference (an ``.npz`` file, or the built-in dataset the registry metadata records, checked against its
recorded digest) fitted into a :class:`~bastion.serve.drift.DriftReference`. Drift enabled with no reference
is a configuration error (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import ConfigError, InvalidInput
from bastion.serve.drift import DriftConfig, DriftMonitor, DriftReference, state_path


def training_reference(
    *, metadata: Mapping[str, Any], reference_file: str = ""
) -> tuple[np.ndarray, str, bool]:
    """The training inputs: ``reference_file`` (``.npz`` with array ``x``) when given, else the built-in
    dataset the registry metadata records. Returns (x, source, verified); ConfigError when none is found."""
    if reference_file:
        try:
            with np.load(str(reference_file), allow_pickle=False) as ref:
                x = np.asarray(ref["x"], dtype=np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"[serve.drift] reference {reference_file}: an .npz file with an array x"
            ) from exc
        return x.reshape(len(x), -1), f"file:{Path(reference_file).name}", True
    from bastion.models.data import DATASETS, load_dataset

    name = metadata.get("dataset")
    if not isinstance(name, str) or name not in DATASETS:
        recorded = f"records dataset {name!r}" if name else "records no training dataset"
        raise ConfigError(
            f"[serve.drift] is enabled but no training reference was found: the model {recorded}; "
            "set [serve.drift] reference to an .npz file with the training inputs (array x)"
        )
    seed = metadata.get("seed", 0)
    ds = load_dataset(name, seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    recorded_digest = metadata.get("dataset_digest")
    verified = isinstance(recorded_digest, str) and recorded_digest == ds.digest()
    return np.asarray(ds.x_train, dtype=np.float64), f"builtin:{name}", verified


def build_monitor(
    *,
    settings: Any,
    adapter: Any,
    metadata: Mapping[str, Any],
    home: str | Path | None,
    model: str,
    version: str,
    preprocessing: Any = None,
) -> DriftMonitor | None:
    """The :class:`DriftMonitor` of ``[serve.drift]`` (``settings``: a ``DriftSettings``) or None.

    The monitor compares rows in the model's input space. A built-in dataset's training split already is in
    it; a reference file holds raw rows, as requests do, and gets the model's ``preprocessing`` (if any)."""
    if not settings.enabled:
        return None
    if getattr(adapter, "predict_proba", None) is None or not hasattr(adapter, "input_shape"):
        raise ConfigError("[serve.drift] monitors numeric models only")
    x, source, verified = training_reference(metadata=metadata, reference_file=settings.reference)
    n_features = int(np.prod(tuple(int(d) for d in adapter.input_shape)))
    if x.shape[1] != n_features:
        raise ConfigError(f"[serve.drift] reference has {x.shape[1]} features, the model takes {n_features}")
    if preprocessing is not None and settings.reference:
        x = np.asarray(preprocessing.apply(x), dtype=np.float64)
    probs = np.asarray(adapter.predict_proba(x.astype(np.float32)), dtype=np.float64)
    try:
        config = DriftConfig(
            window=settings.window,
            min_samples=settings.min_samples,
            feature_psi_alert=settings.feature_psi_alert,
            prediction_psi_alert=settings.prediction_psi_alert,
            confidence_drop_alert=settings.confidence_drop_alert,
            check_every=settings.check_every,
        )
        reference = DriftReference.fit(x=x, probs=probs)
    except InvalidInput as exc:
        raise ConfigError(f"[serve.drift] {exc}") from exc
    return DriftMonitor(
        reference=reference,
        config=config,
        state_file=state_path(home, model) if home is not None else None,
        labels={"model": model, "version": version, "reference": source, "reference_verified": verified},
    )


__all__ = ["build_monitor", "training_reference"]
