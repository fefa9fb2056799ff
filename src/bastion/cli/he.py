"""``bastion he evaluate``: encrypted inference end to end (client encrypt → server infer → decrypt)."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, OutputFormat, print_json
from bastion.errors import InvalidInput

ARCHES = ("logistic", "mlp")


def register(app: typer.Typer) -> None:
    he = typer.Typer(help="Homomorphic-encryption inference (TenSEAL CKKS).", no_args_is_help=True)
    app.add_typer(he, name="he")

    @he.command("evaluate")
    def evaluate(
        model: Path | None = typer.Option(
            None,
            "--model",
            help="A bastion train directory, a .safetensors HE/linear model or a .skops file.",
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
        seed: int = typer.Option(0, "--seed", help="Seed for --dataset training."),
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Report label agreement with plaintext predictions and latency per sample, packed vs one-by-one."""
        from bastion.privacy import he as he_lib

        if (model is None) == (dataset is None):
            raise InvalidInput("give exactly one of --model and --dataset")
        if arch not in ARCHES:
            raise InvalidInput(f"--arch must be one of {', '.join(ARCHES)}")
        if layout not in ("auto", "packed", "single"):
            raise InvalidInput("--layout must be packed, single or auto")
        y = None
        if dataset is not None:
            from bastion.models.data import load_dataset

            ds = load_dataset(dataset, seed=seed)
            if arch == "mlp":
                m = he_lib.train_poly_mlp(x=ds.x_train, y=ds.y_train, n_classes=ds.n_classes, seed=seed)
            else:
                m = he_lib.train_logistic(x=ds.x_train, y=ds.y_train, seed=seed)
            x, y = ds.x_test, ds.y_test
        else:
            assert model is not None
            m = he_lib.load_he_model(model)
        if data is not None:
            x, y = he_lib.load_data_file(data, target=target)
        elif dataset is None:
            raise InvalidInput("--data is required with --model")
        if save_model is not None:
            he_lib.save_he_model(m, save_model)
        layouts = None if layout == "auto" else (layout,)
        result = he_lib.evaluate(model=m, x=x, y=y, layouts=layouts, single_samples=single_samples)
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
            return
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
