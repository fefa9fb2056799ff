"""Helpers every ``bastion watermark`` command uses: the key and vault options, model loading, output."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import OutputFormat, print_json
from bastion.errors import InvalidInput

EXIT_OWNED = 1

KEY_FILE_OPTION = typer.Option(None, "--key-file", help="Watermark key file (from 'keygen --out').")
KEY_ID_OPTION = typer.Option(
    None,
    "--key-id",
    help="A key kept in the project home (default: the watermark.key_id setting, else the only one).",
)


def _vault(home: Path | None) -> Any:
    from bastion.cli._common import open_vault

    return open_vault(home)


def _key(key_file: Path | None, key_id: str | None, vault: Any) -> Any:
    from bastion.watermark.keys import read_key_file, resolve_key

    if key_file is not None and key_id is not None:
        raise InvalidInput("give --key-file or --key-id, not both")
    if key_file is not None:
        return read_key_file(key_file)
    return resolve_key(key_id, vault=vault)


def _needs_vault(key_file: Path | None, home: Path | None) -> bool:
    from bastion.vault.project import home_exists

    return key_file is None or home_exists(home)


@contextlib.contextmanager
def _model_dir(ref: str, vault: Any) -> Iterator[Path]:
    """A local model directory, or a registry version materialised (verified) into a temporary directory."""
    local = Path(ref)
    if local.exists():
        yield local
        return
    if vault is None:
        raise InvalidInput(f"{ref} is not a local model directory and there is no project home to look it up")
    with vault.materialize(ref) as directory:
        yield directory


def _load_model(ref: str, vault: Any) -> Any:
    """The bastion MLP at ``ref`` (a directory or a registry ref); errors name ``ref``, not a temp path."""
    from bastion.errors import NotFound
    from bastion.models.recipes import load_model

    with _model_dir(ref, vault) as directory:
        try:
            return load_model(directory)
        except (NotFound, InvalidInput) as exc:
            if Path(ref).exists():
                raise
            raise InvalidInput(
                f"{ref}: not a bastion MLP model (config.json and model.safetensors of 'bastion train')",
                hint="watermarks are embedded in and verified on bastion-mlp models",
            ) from exc


def _local_suspect(ref: str, vault: Any) -> tuple[Any, Any]:
    """(a ``TorchAdapter`` over the bastion MLP at ``ref``, the loaded model) for querying a local suspect."""
    from bastion.models.adapters import TorchAdapter

    loaded = _load_model(ref, vault)
    cfg = loaded.config
    return TorchAdapter(loaded.module, input_shape=(cfg.n_features,), n_classes=cfg.n_classes), loaded


def _emit(fmt: OutputFormat, doc: dict[str, Any], lines: list[str]) -> None:
    if fmt is OutputFormat.json:
        print_json(doc)
        return
    for line in lines:
        typer.echo(line)


def _bearer_headers(bearer_env: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` from the variable named by ``--bearer-env`` (never from a flag value)."""
    if not bearer_env:
        return {}
    token = os.environ.get(bearer_env)
    if not token:
        raise InvalidInput(f"${bearer_env} is not set")
    return {"Authorization": f"Bearer {token}"}
