"""Models for encrypted inference from the registry: ``NAME``, ``NAME:VERSION`` or ``NAME@ENV``.

The version is resolved first (so ``NAME@ENV`` names one fixed version), then materialised by the vault, which
checks the caller's permission, the signature and every digest before any plaintext is written; the artifact
is then read by the same pickle-free loaders as a local file (:func:`._model.load_he_model`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import InvalidInput
from bastion.privacy.he._model import HEModel, load_he_model

MODEL_SUFFIXES = (".safetensors", ".skops")


@dataclass(frozen=True, eq=False)
class RegistryModel:
    """A model loaded from a verified registry version."""

    model: HEModel
    ref: str
    env: str
    manifest_digest: str


def looks_like_registry_ref(text: str) -> bool:
    """True when ``text`` parses as ``NAME[:VERSION|@ENV]`` and has no path separator or model suffix."""
    from bastion.vault import ArtifactRef

    if not text or os.sep in text or (os.altsep and os.altsep in text):
        return False
    if text.lower().endswith(MODEL_SUFFIXES):
        return False
    try:
        ArtifactRef.parse(text)
    except InvalidInput:
        return False
    return True


def load_artifact_model(directory: str | os.PathLike[str]) -> HEModel:
    """The model in a materialised artifact: a ``bastion train`` directory, or its one model file."""
    from bastion.vault import SIGNATURE_FILE

    root = Path(directory)
    if (root / "config.json").is_file():
        return load_he_model(root)
    files = [p for p in root.iterdir() if p.is_file() and p.name != SIGNATURE_FILE]
    models = [p for p in files if p.suffix.lower() in MODEL_SUFFIXES]
    if len(models) != 1 or len(files) != 1:
        names = ", ".join(sorted(p.name for p in files)[:5]) or "nothing"
        raise InvalidInput(
            f"not a model for encrypted inference: expected a bastion model directory or one "
            f".safetensors/.skops file, found {names}"
        )
    return load_he_model(models[0])


def load_registry_model(*, ref: str, vault: Any) -> RegistryModel:
    """Resolve ``ref`` to one version, materialise it (permission, signature and digests checked by the
    vault) and load it. Raises InvalidInput for an artifact that is not a model usable under CKKS."""
    version = vault.show(ref)
    if version.kind != "model":
        raise InvalidInput(f"{version.ref} is a {version.kind}, not a model")
    with vault.materialize(version.ref) as directory:
        model = load_artifact_model(directory)
    return RegistryModel(
        model=model, ref=version.ref, env=version.env, manifest_digest=version.manifest_digest
    )


__all__ = ["RegistryModel", "load_artifact_model", "load_registry_model", "looks_like_registry_ref"]
