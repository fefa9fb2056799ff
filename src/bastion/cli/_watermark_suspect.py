"""``bastion watermark verify``: how a suspect is reached (a model directory, a registry ref or a served URL)
and which watermark record it is tested against (given, carried by the suspect, annotated in the registry or
kept in the home); ``verify --consumers`` attributes a suspect to one consumer's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import OutputFormat
from bastion.cli._watermark_common import (
    EXIT_OWNED,
    _bearer_headers,
    _emit,
    _key,
    _local_suspect,
    _needs_vault,
    _vault,
)
from bastion.errors import InvalidInput


def _attribute_cmd(
    home: Path | None,
    key_file: Path | None,
    key_id: str | None,
    consumers_file: Path,
    model: str | None,
    url: str | None,
    model_name: str | None,
    bearer_env: str | None,
    fmt: OutputFormat,
) -> None:
    """``verify --consumers``: which consumer's answers (per-consumer API watermark) trained the suspect."""
    from bastion.watermark.api import ConsumerEvidence
    from bastion.watermark.verify import OWNED_P

    evidence = ConsumerEvidence.load(consumers_file)
    vault = _vault(home) if (_needs_vault(key_file, home) or (model and not Path(model).exists())) else None
    try:
        key = _key(key_file, key_id, vault)
        if url is not None:
            from bastion.models.adapters import RemoteAdapter

            headers = _bearer_headers(bearer_env)
            assert model_name is not None
            adapter: Any = RemoteAdapter(
                url,
                model=model_name,
                n_classes=evidence.n_classes,
                input_shape=(evidence.n_features,),
                outputs="probabilities",
                headers=headers,
            )
            suspect = f"{url.rstrip('/')}/v2/models/{model_name}"
        else:
            assert model is not None
            adapter, _ = _local_suspect(model, vault)
            suspect = model
        found = evidence.attribute(key=key, predict_proba=adapter.predict_proba)
    finally:
        if vault is not None:
            vault.close()
    owned = found.consumer is not None and found.p_value < OWNED_P
    pair = not owned and bool(found.group) and found.group_p_value < OWNED_P  # two accounts, one attacker
    # the deployment wave (common to every consumer's answers): trained on this deployment's answers, even
    # where an aggregate of several accounts' answers names no consumer
    prov = found.provenance_p_value < OWNED_P
    doc = {
        **found.to_dict(),
        "suspect": suspect,
        "owned": owned or pair or prov,
        "provenance": prov,
        "key_id": evidence.key_id,
    }
    if owned:
        line = f"trained on the answers given to {found.consumer} (z={found.z:.1f}, p={found.p_value:.3g})"
    elif pair:
        each = ", ".join(f"{c} z={found.scores[c]:.1f}" for c in found.group)
        line = (
            f"trained on the answers given to {' + '.join(found.group)} (two accounts combined: "
            f"z={found.group_z:.1f}, p={found.group_p_value:.3g}; {each})"
        )
    else:
        line = f"no consumer identified (z={found.z:.1f}, p={found.p_value:.3g})"
    where = (
        f"trained on this deployment's answers (deployment wave z={found.provenance_z:.1f}, "
        f"p={found.provenance_p_value:.3g} on {found.provenance_probes} probes)"
        if prov
        else f"no deployment wave found (z={found.provenance_z:.1f}, p={found.provenance_p_value:.3g})"
    )
    _emit(fmt, doc, [f"{suspect}: {line}", f"{suspect}: {where}"])
    if owned or pair or prov:
        raise typer.Exit(EXIT_OWNED)


def _verify(
    *,
    vault: Any,
    key: Any,
    model: str | None,
    url: str | None,
    model_name: str | None,
    bearer_env: str | None,
    record_file: Path | None,
    marks_file: Path | None,
) -> tuple[Any, Any, str]:
    from bastion.watermark.api import ApiMarks, verify_marks
    from bastion.watermark.commitment import read_record
    from bastion.watermark.verify import verify_triggers

    marks = ApiMarks.load(marks_file) if marks_file is not None else None
    rec = read_record(record_file) if record_file is not None else None
    if url is not None:
        from bastion.watermark.verify import RemoteSuspect

        assert model_name is not None
        headers = _bearer_headers(bearer_env)
        if marks is not None:
            shape, n_classes = tuple(int(d) for d in marks.x.shape[1:]), marks.n_classes
        else:
            rec = rec or _registry_record(vault, key, model_name) or _home_record(vault, key, shape=None)
            shape, n_classes = rec.spec.input_shape, rec.spec.n_classes
        adapter: Any = RemoteSuspect(
            url, model=model_name, n_classes=n_classes, input_shape=shape, headers=headers
        )
        prep = _registry_preprocessing(vault, model_name, rec) if marks is None else None
        if prep is not None:  # served like our registry model: raw features in (issue 14 item 10)
            from bastion.models.adapters import RawInputAdapter

            adapter = RawInputAdapter(adapter, prep)
        suspect = f"{url.rstrip('/')}/v2/models/{model_name}"
    else:
        assert model is not None
        adapter, loaded = _local_suspect(model, vault)
        suspect = model
        if marks is None and rec is None:
            shape = (loaded.config.n_features,)
            rec = _suspect_record(loaded.metadata, key) or _home_record(vault, key, shape=shape)
    if marks is not None:
        return verify_marks(model=adapter, marks=marks, key=key), None, suspect
    assert rec is not None
    triggers = rec.check_opens(key)
    return verify_triggers(model=adapter, trigger_set=triggers, commitment=rec.commitment), rec, suspect


def _suspect_record(metadata: Any, key: Any) -> Any:
    """The record a suspect carries in its metadata (it may have been stripped; a wrong key is an error)."""
    from bastion.watermark.commitment import WatermarkRecord

    data = metadata.get("watermark") if hasattr(metadata, "get") else None
    if data is None:
        return None
    try:
        rec = WatermarkRecord.from_dict(data)
    except InvalidInput:
        return None
    if rec.key_id != key.key_id:
        raise InvalidInput(
            f"wrong watermark key: the suspect names key {rec.key_id}, you gave key {key.key_id}",
            hint="pass --record FILE to test this key's trigger set anyway",
        )
    return rec


def _registry_preprocessing(vault: Any, name: str, rec: Any) -> Any:
    """The preprocessing stored with the newest registry version of ``name`` that carries ``rec`` (or None).

    A gateway serving that version takes raw features and scales them itself, so the trigger set (in the
    model's input space) is sent mapped back to raw features."""
    from bastion.errors import BastionError

    if vault is None or rec is None:
        return None
    try:
        versions = [v for v in vault.list("model") if str(v.name) == name]
        for version in versions:  # newest first
            ref = f"{version.name}:{version.version}"
            notes = vault.annotations(ref, namespace="watermark")
            if any(note.data.get("commitment") == rec.commitment for note in notes):
                from bastion.models.recipes import load_model

                with vault.materialize(ref) as directory:
                    return load_model(directory).preprocessing
    except BastionError:
        return None
    return None


def _registry_record(vault: Any, key: Any, name: str) -> Any:
    """The record of ``key`` annotated on the newest registry version of ``name`` that has one (or None).

    A gateway serves registry models under their registry name, so ``--model-name`` finds the watermark
    that was embedded into that model even when the same key marked several models."""
    from bastion.errors import BastionError
    from bastion.watermark.commitment import WatermarkRecord

    if vault is None:
        return None
    try:
        versions = [v for v in vault.list("model") if str(v.name) == name]
    except BastionError:
        return None
    for version in versions:  # newest first
        notes = vault.annotations(f"{version.name}:{version.version}", namespace="watermark")
        for note in reversed(notes):
            try:
                rec = WatermarkRecord.from_dict(note.data)
            except BastionError:
                continue
            if rec.key_id == key.key_id:
                return rec
    return None


def _home_record(vault: Any, key: Any, *, shape: tuple[int, ...] | None) -> Any:
    from bastion.watermark.commitment import home_records

    if vault is None:
        raise InvalidInput("no watermark record: pass --record FILE (written by 'watermark embed --record')")
    found = home_records(vault.settings.home, key_id=key.key_id)
    if shape is not None:
        found = [r for r in found if r.spec.input_shape == shape] or found
    commitments = {r.commitment: r for r in found}
    if not commitments:
        raise InvalidInput(
            f"no watermark was embedded with key {key.key_id} in this project (wrong key?)",
            hint="pass --record FILE, or the key the model was watermarked with",
        )
    if len(commitments) > 1:
        raise InvalidInput(
            f"{len(commitments)} watermarks use key {key.key_id} and none is recorded on a registry model "
            "of that name: choose one with --record FILE",
            hint="records are kept in <home>/watermark/records/ and in each model's config.json",
        )
    return next(iter(commitments.values()))
