"""``bastion train``: the built-in MLP recipe, optionally with DP-SGD, spending the privacy ledger."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
from bastion.errors import InvalidInput


def parse_hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise InvalidInput(f"--hidden expects comma-separated integers, got {text!r}") from exc
    if not widths or any(w < 1 or w > 4096 for w in widths):
        raise InvalidInput("--hidden widths must be in 1..4096")
    return widths


def load_source(dataset: str | None, data: Path | None, target: str | None, seed: int) -> tuple[Any, str]:
    """The Dataset and its ledger key (``sha256:`` of its source), from ``--dataset`` or ``--data``."""
    from bastion.models.data import load_csv, load_dataset
    from bastion.privacy.training import dataset_ledger_key

    if (dataset is None) == (data is None):
        raise InvalidInput("give exactly one of --dataset NAME or --data FILE")
    if dataset is not None:
        if target is not None:
            raise InvalidInput("--target goes with --data, not --dataset")
        ds = load_dataset(dataset, seed=seed)
        return ds, dataset_ledger_key(ds)
    assert data is not None
    if not target:
        raise InvalidInput("--data needs --target COLUMN")
    ds = load_csv(data, target=target, seed=seed)
    return ds, dataset_ledger_key(ds)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        dataset: str | None = typer.Option(
            None, "--dataset", help="Built-in dataset: digits, breast_cancer, wine."
        ),
        data: Path | None = typer.Option(None, "--data", help="A numeric CSV file with a header row."),
        target: str | None = typer.Option(None, "--target", help="The label column of --data."),
        out: Path | None = typer.Option(
            None, "--out", help="Write the model here (safetensors + config.json)."
        ),
        push: str | None = typer.Option(
            None, "--push", help="Push the model to the registry under this name."
        ),
        env: str | None = typer.Option(
            None, "--env", help="Environment for --push (default: the project's)."
        ),
        dp: bool = typer.Option(
            False, "--dp", help="Train with DP-SGD (Opacus) and spend the privacy ledger."
        ),
        epsilon: float | None = typer.Option(
            None, "--epsilon", help="Target ε of the whole run (with --dp)."
        ),
        delta: float = typer.Option(1e-5, "--delta", help="Target δ (with --dp)."),
        max_grad_norm: float = typer.Option(
            1.0, "--max-grad-norm", help="Per-example clipping norm (with --dp)."
        ),
        accountant: str = typer.Option("rdp", "--accountant", help="rdp or prv: calibrates and charges ε."),
        epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 30 with --dp, else 20)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 128 / 64)."),
        lr: float | None = typer.Option(None, "--lr", help="SGD learning rate (default 1.0 / 0.05)."),
        hidden: str = typer.Option("64", "--hidden", help="Hidden layer widths, e.g. 64 or 128,64."),
        seed: int = typer.Option(0, "--seed", help="Seed for the split, the initialisation and the batches."),
        watermark_key: str | None = typer.Option(
            None,
            "--watermark-key",
            help="Embed a trigger-set watermark: a key file or a key id of the project home.",
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Train the built-in MLP; with --dp the planned ε is checked against the dataset's budget first.

        The budget is keyed by the data's digest (sha256 of the built-in's arrays or of the file); an admin
        sets it with 'bastion privacy budget set DATASET --epsilon E'; there is no default."""
        from bastion.models.recipes import WEIGHTS_FILE, save_model
        from bastion.privacy.dp import NOISE_PRNG_NOTE
        from bastion.privacy.training import DPSettings, ledger_key, record_training, train_recipe
        from bastion.store.lineage import REGISTRY_NAMESPACE
        from bastion.vault.project import home_exists

        if out is None and push is None:
            raise InvalidInput("give --out PATH and/or --push NAME")
        if epsilon is not None and not dp:
            raise InvalidInput("--epsilon needs --dp")
        if dp and epsilon is None:
            raise InvalidInput("--dp needs --epsilon E")
        settings = (
            DPSettings(epsilon=epsilon, delta=delta, max_grad_norm=max_grad_norm, accountant=accountant)
            if dp and epsilon is not None
            else None
        )
        widths = parse_hidden(hidden)
        ds, key = load_source(dataset, data, target, seed)
        vault = None
        if push is not None or home_exists(home):
            from bastion.cli._common import open_vault

            vault = open_vault(home)
        try:
            if push is not None:
                assert vault is not None  # fail before training; vault.push checks again on the same bytes
                vault.access.check(
                    vault.identity, "registry:push", model=push, env=env or vault.settings.default_env
                )
            wm = None
            if watermark_key is not None:
                if vault is None:
                    raise InvalidInput("--watermark-key needs a project home (the commitment is logged)")
                from bastion.watermark import TrainingWatermark, resolve_key

                vault.access.check(vault.identity, "watermark:embed")
                wm = TrainingWatermark(key=resolve_key(watermark_key, vault=vault), dataset=ds)
            from bastion.cli._progress import interactive, step

            with step(
                f"training on {dataset or data}" + (" with DP-SGD" if settings else ""),
                enabled=interactive(json_output=fmt is OutputFormat.json),
            ):
                report = train_recipe(
                    dataset=ds,
                    dp=settings,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    hidden=widths,
                    seed=seed,
                    vault=vault,
                    ledger_label=dataset if dataset is not None else str(data),
                    hooks=(wm.hook,) if wm is not None else (),
                )
            meta = report.metadata()
            result: dict[str, Any] = report.to_dict()
            if wm is not None:
                wm_record, wm_check = wm.commit(vault=vault, model=report.module, target=push or str(out))
                meta = {**meta, "watermark": wm_record.to_dict()}
                result["watermark"] = {**wm_check.to_dict(), "record": wm_record.to_dict()}
            outputs: list[tuple[str, str, str | None]] = []
            if out is not None:
                save_model(
                    report.module, out, config=report.config, metadata=meta, preprocessing=ds.preprocessing
                )
                result["out"] = str(out)
                outputs.append(("file", str(out.resolve()), ledger_key(out / WEIGHTS_FILE)))
            if push is not None:
                assert vault is not None
                with tempfile.TemporaryDirectory(dir=vault.settings.home) as tmp:  # home is 0700
                    model_dir = save_model(
                        report.module,
                        Path(tmp) / "model",
                        config=report.config,
                        metadata=meta,
                        preprocessing=ds.preprocessing,
                    )
                    version = vault.push(model_dir, name=push, kind="model", env=env, metadata=meta)
                result["pushed"] = {"name": version.name, "version": version.version, "env": version.env}
                if wm is not None:
                    from bastion.watermark import annotate_version

                    annotate_version(vault, wm_record, f"{version.name}:{version.version}")
                outputs.append(
                    (REGISTRY_NAMESPACE, f"{version.name}:{version.version}", version.manifest_digest)
                )
            if vault is not None:
                record_training(vault, report, source=dataset or str(data), outputs=outputs)
            if vault is not None and report.spend_id is not None:
                from bastion.privacy.ledger import ledger_for_vault

                result["budget"] = ledger_for_vault(vault).status(key).epsilon_summary()
        finally:
            if vault is not None:
                vault.close()
        if fmt is OutputFormat.json:
            print_json(result)
            return
        kind = "DP-SGD" if report.private else "non-private"
        typer.echo(
            f"trained {kind} MLP {list(widths)} on {report.dataset}: test accuracy {report.accuracy:.4f}"
        )
        if report.private:
            typer.echo(
                f"  ε={report.epsilon:.4f} (RDP {report.epsilon_rdp:.4f}, PRV {report.epsilon_prv:.4f}), "
                f"δ={report.delta:g}, noise {report.noise_multiplier:.4f}, clip {report.max_grad_norm:g}, "
                f"q={report.sample_rate:.4f}, {report.steps} steps"
            )
            typer.echo(f"  note: {NOISE_PRNG_NOTE}")
        if "budget" in result:
            b = result["budget"]
            typer.echo(
                f"  ledger {report.dataset} ({key[:19]}…): spent ε={b['epsilon_spent']:.4f} "
                f"of {b['epsilon_budget']:.4g}"
            )
        elif report.private:
            typer.echo("  no project home: the privacy ledger was not charged")
        if out is not None:
            typer.echo(f"  saved to {out}")
        if "pushed" in result:
            p = result["pushed"]
            typer.echo(f"  pushed {p['name']}:{p['version']} ({p['env']})")
