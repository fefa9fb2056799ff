"""The guard model a research script measures: the packaged one, or a candidate directory written by
``train_guard.py --out DIR`` (verified against the public key written beside it)."""

from __future__ import annotations

from pathlib import Path

from bastion.guard.classifier import MODEL_FILE, PUBLIC_KEY_FILE, GuardModel, load_model


def candidate_model(model_dir: Path | None) -> GuardModel | None:
    """The signed model in ``model_dir`` (``None``: the packaged model, which the detector loads itself)."""
    if model_dir is None:
        return None
    pem = (model_dir / PUBLIC_KEY_FILE).read_bytes()
    return load_model(model_dir / MODEL_FILE, public_key_pem=pem)
