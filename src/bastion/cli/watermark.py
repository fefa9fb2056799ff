"""``bastion watermark``: keys, embedding, verification of suspects and signed ownership reports.

Exit codes of ``verify``: 0 — no watermark evidence (``not_detected`` or ``inconclusive``); 1 — the watermark
was found (``owned``: a finding about the suspect); 2 — an error (wrong key, wrong input shape, unreachable
URL, …). ``report-verify``: 0 valid, 1 the report does not verify, 2 error. ``verify-labels``
(:mod:`bastion.cli.watermark_labels`): 0 no consumer named, 1 a consumer or two accounts named, 2 error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
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


def _record_embed_lineage(vault: Any, *, model: str, dataset: Any, out: Path | None, pushed: Any) -> None:
    """Lineage of 'watermark embed': the source model and the fine-tuning data -> the watermarked model(s)."""
    from bastion.models.data import DATASETS, file_digest
    from bastion.models.recipes import WEIGHTS_FILE
    from bastion.store.lineage import LineageDataset
    from bastion.vault.lineage import path_dataset, record_artifact_run, version_dataset

    if getattr(vault, "engine", None) is None:
        return
    source = path_dataset(model) if Path(model).exists() else version_dataset(vault.show(model, _log=False))
    inputs = [source]
    if dataset.name in DATASETS:
        inputs.append(LineageDataset("bastion-builtin", dataset.name, f"sha256:{dataset.digest()}"))
    outputs = []
    if out is not None:
        outputs.append(
            LineageDataset("file", str(out.resolve()), f"sha256:{file_digest(out / WEIGHTS_FILE)}")
        )
    if pushed is not None:
        outputs.append(version_dataset(pushed))
    record_artifact_run(vault, job="watermark.embed", inputs=inputs, outputs=outputs)


def _default_dataset(model: str, metadata: Any, vault: Any) -> str | None:
    """The built-in dataset the model was trained on: its metadata, else the registry's lineage."""
    from bastion.models.data import DATASETS

    name = metadata.get("dataset") if hasattr(metadata, "get") else None
    if isinstance(name, str) and name in DATASETS:
        return name
    if vault is None or Path(model).exists():
        return None
    from bastion.errors import BastionError
    from bastion.store.lineage import lineage_graph, resolve_dataset

    try:
        vault.access.check(vault.identity, "registry:read")
        root = resolve_dataset(vault.engine, model, namespace="bastion-registry")
        sources = lineage_graph(vault.engine, root=root).sources
    except BastionError:
        return None
    builtins = sorted({s.name for s in sources if s.namespace == "bastion-builtin" and s.name in DATASETS})
    return builtins[0] if len(builtins) == 1 else None


def _dataset(dataset: str | None, data: Path | None, target: str | None, seed: int) -> Any:
    from bastion.models.data import load_csv, load_dataset

    if (dataset is None) == (data is None):
        raise InvalidInput(
            "give exactly one of --dataset NAME or --data FILE",
            hint="without either, the model's own training dataset is used when it is a built-in one",
        )
    if dataset is not None:
        return load_dataset(dataset, seed=seed)
    if not target:
        raise InvalidInput("--data needs --target COLUMN")
    assert data is not None
    return load_csv(data, target=target, seed=seed)


def _emit(fmt: OutputFormat, doc: dict[str, Any], lines: list[str]) -> None:
    if fmt is OutputFormat.json:
        print_json(doc)
        return
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="watermark",
        help="Trigger-set and API watermarks: embed, verify a suspect, signed ownership reports.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="watermark")

    @group.command("keygen")
    def keygen(
        out: Path | None = typer.Option(
            None, "--out", help="Write a key file here (mode 0600) instead of keeping the key in the home."
        ),
        env: str | None = typer.Option(None, "--env", help="KEK environment that wraps the key in the home."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Create a watermark key: a key file, or wrapped by the project's key provider in the home."""
        from bastion.watermark.keys import generate_key, store_key, write_key_file

        key = generate_key()
        if out is not None:
            write_key_file(key, out)
            where = str(out)
        else:
            vault = _vault(home)
            try:
                vault.access.check(vault.identity, "watermark:embed")
                env_name = env or vault.settings.default_env
                where = str(store_key(key, home=vault.settings.home, provider=vault.keys, env=env_name))
                vault.audit.append(
                    actor=vault.identity.name,
                    action="watermark:keygen",
                    target=key.key_id,
                    outcome="ok",
                    details={"env": env_name},
                )
            finally:
                vault.close()
        _emit(fmt, {"key_id": key.key_id, "stored": where}, [f"watermark key {key.key_id} ({where})"])

    @group.command("embed")
    def embed_cmd(
        model: str = typer.Option(..., "--model", help="A model directory or a registry ref NAME[:VERSION]."),
        dataset: str | None = typer.Option(
            None,
            "--dataset",
            help="Built-in dataset to fine-tune on (default: the model's own, from its metadata or lineage).",
        ),
        data: Path | None = typer.Option(None, "--data", help="Or a numeric CSV file with a header row."),
        target: str | None = typer.Option(None, "--target", help="The label column of --data."),
        out: Path | None = typer.Option(None, "--out", help="Write the watermarked model here."),
        push: str | None = typer.Option(None, "--push", help="Push the watermarked model under this name."),
        env: str | None = typer.Option(None, "--env", help="Environment for --push."),
        key_file: Path | None = KEY_FILE_OPTION,
        key_id: str | None = KEY_ID_OPTION,
        triggers: int = typer.Option(50, "--triggers", help="Size of the trigger set."),
        epochs: int = typer.Option(8, "--epochs", help="Fine-tuning epochs."),
        lr: float = typer.Option(0.02, "--lr", help="Fine-tuning learning rate (SGD, momentum 0.9)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the data split and the batches."),
        record: Path | None = typer.Option(None, "--record", help="Also write the watermark record here."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Fine-tune a model with a keyed trigger set; log the commitment in the audit log.

        Without --key-file/--key-id the home's key is used, created on first use. A dataset with a privacy
        budget is refused (non-private fine-tuning); the output's metadata describes this fine-tuning."""
        from bastion.models.recipes import save_model
        from bastion.watermark.commitment import annotate_version, log_commitment, save_record
        from bastion.watermark.embed import check_may_fine_tune, embed
        from bastion.watermark.keys import ensure_home_key

        if out is None and push is None:
            raise InvalidInput("give --out DIR and/or --push NAME")
        if out is not None and out.exists():
            raise InvalidInput(f"{out} already exists")
        if key_file is not None and key_id is not None:
            raise InvalidInput("give --key-file or --key-id, not both")
        notes: list[str] = []
        vault = _vault(home)
        try:
            vault.access.check(vault.identity, "watermark:embed")
            loaded = _load_model(model, vault)
            if dataset is None and data is None:
                dataset = _default_dataset(model, loaded.metadata, vault)
                if dataset is not None:
                    notes.append(f"dataset {dataset} (the model's training dataset)")
            ds = _dataset(dataset, data, target, seed)
            check_may_fine_tune(dataset=ds, vault=vault)  # before a key is created or a step taken
            created = False
            if key_file is None and key_id is None:
                key, created = ensure_home_key(vault=vault)
            else:
                key = _key(key_file, key_id, vault)
            from bastion.cli._progress import interactive, step

            with step(
                f"embedding {triggers} triggers ({epochs} fine-tuning epochs)",
                enabled=interactive(json_output=fmt is OutputFormat.json),
            ):
                result = embed(
                    model=loaded.module,
                    dataset=ds,
                    key=key,
                    size=triggers,
                    epochs=epochs,
                    lr=lr,
                    seed=seed,
                    target=push or str(out),
                    vault=vault,
                )
            if created:
                notes.append(f"created watermark key {key.key_id} on first use (kept in the home, wrapped)")
            logged = log_commitment(vault, result.record)
            meta = {
                **result.metadata(loaded.metadata, source=model),
                "architecture": loaded.config.to_dict(),
                "watermark": logged.to_dict(),
            }
            doc: dict[str, Any] = {
                **result.to_dict(),
                "record": logged.to_dict(),
                "key_created": created,
                "dataset": ds.name,
            }
            if out is not None:
                save_model(
                    loaded.module,
                    out,
                    config=loaded.config,
                    metadata=meta,
                    preprocessing=loaded.preprocessing,
                )
                doc["out"] = str(out)
            version = None
            if push is not None:
                with tempfile.TemporaryDirectory(dir=vault.settings.home) as tmp:
                    model_dir = save_model(
                        loaded.module,
                        Path(tmp) / "model",
                        config=loaded.config,
                        metadata=meta,
                        preprocessing=loaded.preprocessing,
                    )
                    version = vault.push(model_dir, name=push, kind="model", env=env, metadata=meta)
                logged = annotate_version(vault, logged, f"{version.name}:{version.version}")
                doc["pushed"] = {"name": version.name, "version": version.version, "env": version.env}
                doc["record"] = logged.to_dict()
            _record_embed_lineage(vault, model=model, dataset=ds, out=out, pushed=version)
            if record is not None:
                from bastion.files import atomic_write
                from bastion.store.auditlog import canonical_json

                atomic_write(record, canonical_json(logged.to_dict()) + b"\n", mode=0o644)
            save_record(logged, home=vault.settings.home)
        finally:
            vault.close()
        lines = [f"note: {n}" for n in notes] + [
            f"embedded watermark {logged.commitment[:16]}… (key {logged.key_id}, {triggers} triggers)",
            f"  trigger accuracy {result.verification.trigger_accuracy:.2f}, "
            f"p={result.verification.p_value:.3g}",
            f"  clean accuracy {result.accuracy_before:.4f} → {result.accuracy_after:.4f}",
            f"  commitment logged at audit entry {logged.audit_index}",
        ]
        if out is not None:
            lines.append(f"  saved to {out}")
        if "pushed" in doc:
            lines.append(f"  pushed {doc['pushed']['name']}:{doc['pushed']['version']}")
        _emit(fmt, doc, lines)

    @group.command("verify")
    def verify_cmd(
        model: str | None = typer.Option(
            None, "--model", help="Suspect: a model directory or a registry ref."
        ),
        url: str | None = typer.Option(
            None, "--url", help="Suspect: an Open Inference Protocol v2 endpoint (base URL)."
        ),
        model_name: str | None = typer.Option(None, "--model-name", help="The model's name at --url."),
        bearer_env: str | None = typer.Option(
            None, "--bearer-env", help="Environment variable holding a bearer token for --url."
        ),
        key_file: Path | None = KEY_FILE_OPTION,
        key_id: str | None = KEY_ID_OPTION,
        record_file: Path | None = typer.Option(
            None, "--record", help="The watermark record (default: the suspect's or the home's)."
        ),
        marks_file: Path | None = typer.Option(
            None, "--marks", help="Test the API watermark's marked queries (a surrogate) instead."
        ),
        consumers_file: Path | None = typer.Option(
            None,
            "--consumers",
            help="Name the consumer whose answers the suspect was trained on (a gateway's "
            "/admin/theft/evidence file).",
        ),
        report: Path | None = typer.Option(None, "--report", help="Export a signed ownership report here."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Query a suspect with the trigger set (or API marks); exit 1 when the watermark is found."""
        from bastion.vault.project import home_exists

        if (model is None) == (url is None):
            raise InvalidInput("give exactly one of --model REF or --url URL")
        if url is not None and not model_name:
            raise InvalidInput("--url needs --model-name NAME")
        if report is not None and marks_file is not None:
            raise InvalidInput("--report needs a trigger-set watermark, not --marks")
        if consumers_file is not None:
            if report is not None or marks_file is not None:
                raise InvalidInput("--consumers goes without --marks and --report")
            _attribute_cmd(home, key_file, key_id, consumers_file, model, url, model_name, bearer_env, fmt)
            return
        vault = _vault(home) if (_needs_vault(key_file, home) or report is not None) else None
        if vault is None and model is not None and not Path(model).exists() and home_exists(home):
            vault = _vault(home)
        try:
            key = _key(key_file, key_id, vault)
            from bastion.cli._progress import interactive, step

            with step(
                f"querying {url or model} on the trigger set",
                enabled=interactive(json_output=fmt is OutputFormat.json),
            ):
                result, rec, suspect = _verify(
                    vault=vault,
                    key=key,
                    model=model,
                    url=url,
                    model_name=model_name,
                    bearer_env=bearer_env,
                    record_file=record_file,
                    marks_file=marks_file,
                )
            doc: dict[str, Any] = {**result.to_dict(), "suspect": suspect}
            if report is not None:
                from bastion.watermark.report import build_report

                assert vault is not None and rec is not None
                build_report(vault=vault, record=rec, verification=result, suspect=suspect).save(report)
                doc["report"] = str(report)
        finally:
            if vault is not None:
                vault.close()
        lines = [
            f"{suspect}: {result.verdict} — trigger accuracy {result.trigger_accuracy:.2f} "
            f"({result.hits}/{result.queries}, chance {result.chance:.3f}), p={result.p_value:.3g}"
        ]
        if report is not None:
            lines.append(f"  signed ownership report: {report}")
        _emit(fmt, doc, lines)
        if result.owned:
            raise typer.Exit(EXIT_OWNED)

    @group.command("report-verify")
    def report_verify(
        path: Path = typer.Argument(..., help="An ownership report (from 'verify --report')."),
        public_key: Path | None = typer.Option(
            None, "--public-key", help="The owner's Ed25519 public key (PEM), obtained out of band."
        ),
        key_file: Path | None = typer.Option(
            None, "--key-file", help="The revealed watermark key: also check it opens the commitment."
        ),
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Check a report's signature, audit-log inclusion proof and commitment (exit 1 if it fails)."""
        from bastion.watermark.keys import read_key_file
        from bastion.watermark.report import OwnershipReport, verify_report

        pem = public_key.read_text(encoding="ascii") if public_key is not None else None
        key = read_key_file(key_file) if key_file is not None else None
        check = verify_report(OwnershipReport.load(path), public_key_pem=pem, key=key)
        trust = "the owner's key" if check.trusted_key else "the key embedded in the report (self-asserted)"
        _emit(
            fmt,
            check.to_dict(),
            [
                f"valid ownership report: {check.suspect} {check.verdict} (p={check.p_value:.3g})",
                f"  commitment {check.commitment[:16]}… logged at entry {check.audit_index} "
                f"on {check.logged_at}",
                f"  signed with {trust}" + ("; the key opens the commitment" if check.key_opened else ""),
            ],
        )

    from bastion.cli.watermark_labels import register as register_verify_labels

    register_verify_labels(group)


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

            headers = {}
            if bearer_env:
                token = os.environ.get(bearer_env)
                if not token:
                    raise InvalidInput(f"${bearer_env} is not set")
                headers["Authorization"] = f"Bearer {token}"
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
            from bastion.models.adapters import TorchAdapter

            loaded = _load_model(model, vault)
            cfg = loaded.config
            adapter = TorchAdapter(loaded.module, input_shape=(cfg.n_features,), n_classes=cfg.n_classes)
            suspect = model
        found = evidence.attribute(key=key, predict_proba=adapter.predict_proba)
    finally:
        if vault is not None:
            vault.close()
    owned = found.consumer is not None and found.p_value < OWNED_P
    pair = not owned and bool(found.group) and found.group_p_value < OWNED_P  # two accounts, one attacker
    doc = {**found.to_dict(), "suspect": suspect, "owned": owned or pair, "key_id": evidence.key_id}
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
    _emit(fmt, doc, [f"{suspect}: {line}"])
    if owned or pair:
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
        headers = {}
        if bearer_env:
            token = os.environ.get(bearer_env)
            if not token:
                raise InvalidInput(f"${bearer_env} is not set")
            headers["Authorization"] = f"Bearer {token}"
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
        from bastion.models.adapters import TorchAdapter

        loaded = _load_model(model, vault)
        cfg = loaded.config
        adapter = TorchAdapter(loaded.module, input_shape=(cfg.n_features,), n_classes=cfg.n_classes)
        suspect = model
        if marks is None and rec is None:
            rec = _suspect_record(loaded.metadata, key) or _home_record(vault, key, shape=(cfg.n_features,))
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
