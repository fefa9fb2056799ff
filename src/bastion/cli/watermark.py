"""``bastion watermark``: keys, embedding, verification of suspects and signed ownership reports.

Exit codes of ``verify``: 0 — no watermark evidence (``not_detected`` or ``inconclusive``); 1 — the watermark
was found (``owned``: a finding about the suspect); 2 — an error (wrong key, wrong input shape, unreachable
URL, …). ``report-verify``: 0 valid, 1 the report does not verify, 2 error. ``verify-labels``
(:mod:`bastion.cli.watermark_labels`): 0 no consumer named, 1 a consumer or two accounts named, 2 error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat
from bastion.cli._watermark_common import (
    EXIT_OWNED,
    KEY_FILE_OPTION,
    KEY_ID_OPTION,
    _emit,
    _key,
    _load_model,
    _needs_vault,
    _vault,
)
from bastion.cli._watermark_embed import _dataset, _default_dataset, _record_embed_lineage
from bastion.cli._watermark_suspect import _attribute_cmd, _verify
from bastion.errors import InvalidInput

__all__ = ["EXIT_OWNED", "KEY_FILE_OPTION", "KEY_ID_OPTION", "register"]


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
            help="Name the consumer whose answers the suspect was trained on, and test whether it was "
            "trained on this deployment's answers at all (a gateway's /admin/theft/evidence file).",
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
