"""``bastion he evaluate``: encrypted inference end to end (client encrypt → server infer → decrypt)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json
from bastion.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from bastion.privacy.he import HEModel

ARCHES = ("logistic", "mlp")


def register(app: typer.Typer) -> None:
    he = typer.Typer(help="Homomorphic-encryption inference (TenSEAL CKKS).", no_args_is_help=True)
    app.add_typer(he, name="he")

    @he.command("evaluate")
    def evaluate(
        model: str | None = typer.Option(
            None,
            "--model",
            help="A bastion train directory, a .safetensors HE/linear model, a .skops file, or a registry "
            "reference NAME[:VERSION|@ENV] (verified by the vault).",
        ),
        dataset: str | None = typer.Option(
            None, "--dataset", help="Train a built-in model on this dataset instead of --model."
        ),
        arch: str = typer.Option(
            "logistic", "--arch", help="With --dataset: logistic or mlp (x² activation)."
        ),
        data: Path | None = typer.Option(
            None, "--data", help=".npz (x, optional y) or CSV; default with --dataset: its test split."
        ),
        target: str | None = typer.Option(None, "--target", help="Label column of a CSV --data file."),
        layout: str = typer.Option("auto", "--layout", help="packed, single or auto (both when possible)."),
        single_samples: int = typer.Option(16, "--single-samples", help="Rows for the one-sample layout."),
        save_model: Path | None = typer.Option(None, "--save-model", help="Write the model (safetensors)."),
        preprocessed: bool = typer.Option(
            False,
            "--preprocessed",
            help="--data is already in the model's input space (default: raw features, scaled with the "
            "preprocessing stored in the model).",
        ),
        seed: int = typer.Option(0, "--seed", help="Seed for --dataset training."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Report label agreement with plaintext predictions and latency per sample, packed vs one-by-one."""
        from bastion.cli._progress import interactive, step
        from bastion.privacy import he as he_lib

        show = interactive(json_output=fmt is OutputFormat.json)

        if (model is None) == (dataset is None):
            raise InvalidInput("give exactly one of --model and --dataset")
        if arch not in ARCHES:
            raise InvalidInput(f"--arch must be one of {', '.join(ARCHES)}")
        if layout not in ("auto", "packed", "single"):
            raise InvalidInput("--layout must be packed, single or auto")
        y = None
        source: dict[str, str] | None = None
        if dataset is not None:
            from bastion.models.data import load_dataset

            ds = load_dataset(dataset, seed=seed)
            _refuse_budgeted(ds, home)
            with step(f"training the {arch} model on {dataset}", enabled=show):
                if arch == "mlp":
                    m = he_lib.train_poly_mlp(x=ds.x_train, y=ds.y_train, n_classes=ds.n_classes, seed=seed)
                else:
                    m = he_lib.train_logistic(x=ds.x_train, y=ds.y_train, seed=seed)
            m = dataclasses.replace(m, preprocessing=ds.preprocessing)
            x, y = ds.x_test, ds.y_test
        else:
            assert model is not None
            m, source = _load_model(model, home)
        notes: list[str] = []
        if data is not None:
            x, y = he_lib.load_data_file(data, target=target)
            if preprocessed:
                pass
            elif m.preprocessing is not None:
                x = m.preprocessing.apply(x)
                notes.append(
                    f"applied the model's stored preprocessing ({m.preprocessing.kind}) to {data.name}"
                )
            else:
                notes.append(
                    "the model stores no preprocessing: --data is used as given (it must already be "
                    "scaled the way the training data was)"
                )
        elif dataset is None:
            raise InvalidInput("--data is required with --model")
        if save_model is not None:
            he_lib.save_he_model(m, save_model)
            if dataset is not None:
                _record_he_lineage(home, dataset=ds, out=save_model)
        layouts = None if layout == "auto" else (layout,)
        with step(f"encrypted inference on {len(x)} rows (CKKS)", enabled=show):
            result = he_lib.evaluate(model=m, x=x, y=y, layouts=layouts, single_samples=single_samples)
        if fmt is OutputFormat.json:
            print_json({**result.to_dict(), **({"model": source} if source else {}), "notes": notes})
            return
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        if source is not None and "ref" in source:
            typer.echo(f"registry model {source['ref']} ({source['env']}, {source['manifest_digest']})")
        typer.echo(
            f"{result.model_kind} model, {result.n_features} features, {result.n_classes} classes, "
            f"depth {result.depth}, {result.samples} samples"
        )
        for r in result.layouts:
            typer.echo(
                f"  {r.layout:6s}: agreement {r.agreement:.4f} on {r.samples} samples, "
                f"{r.ms_per_sample:.2f} ms/sample end to end ({r.server_ms_per_sample:.2f} ms server), "
                f"max |Δlogit| {r.max_abs_error:.2e}"
            )
        if result.encrypted_accuracy is not None:
            plain = result.plaintext_accuracy or 0.0
            typer.echo(f"accuracy: encrypted {result.encrypted_accuracy:.4f}, plaintext {plain:.4f}")


def _refuse_budgeted(ds: Any, home: Path | None) -> None:
    """Inside a project home, training the HE model on a dataset with a privacy budget is refused."""
    from bastion.vault.project import home_exists

    if not home_exists(home):
        return
    from bastion.cli._common import open_vault
    from bastion.privacy.ledger import ledger_for_vault
    from bastion.privacy.training import refuse_non_private_training

    with open_vault(home) as vault:
        refuse_non_private_training(
            dataset=ds,
            ledger=ledger_for_vault(vault),
            what="training the HE model on it (not DP)",
            hint="evaluate a DP-trained model (--model REF --data FILE), or use a dataset without a budget",
        )


def _record_he_lineage(home: Path | None, *, dataset: Any, out: Path) -> None:
    """Lineage of 'he evaluate --dataset … --save-model': the built-in data -> the saved model file."""
    from bastion.models.data import file_digest
    from bastion.store.lineage import LineageDataset
    from bastion.vault.lineage import record_artifact_run
    from bastion.vault.project import home_exists

    if not home_exists(home):
        return
    from bastion.cli._common import open_vault

    with open_vault(home) as vault:
        if getattr(vault, "engine", None) is None:
            return
        record_artifact_run(
            vault,
            job="he.train",
            inputs=[LineageDataset("bastion-builtin", dataset.name, f"sha256:{dataset.digest()}")],
            outputs=[LineageDataset("file", str(out.resolve()), f"sha256:{file_digest(out)}")],
        )


def _load_model(text: str, home: Path | None) -> tuple[HEModel, dict[str, str]]:
    """A local model path, else a registry reference loaded through the project's vault."""
    from bastion.privacy import he as he_lib

    path = Path(text)
    if path.exists() or not he_lib.looks_like_registry_ref(text):
        return he_lib.load_he_model(path), {"path": str(path)}
    from bastion.vault.project import home_exists

    if not home_exists(home):
        raise NotFound(
            f"no model file {text!r}, and no project home to resolve it as a registry reference",
            hint="pass a model path, or --home / $BASTION_HOME for a registry reference",
        )
    from bastion.cli._common import open_vault

    with open_vault(home) as vault:
        loaded = he_lib.load_registry_model(ref=text, vault=vault)
    return loaded.model, {"ref": loaded.ref, "env": loaded.env, "manifest_digest": loaded.manifest_digest}
