"""``bastion federate``: run a real Flower federation on this host (SuperLink + K SuperNodes, TLS)."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, print_json


def register(app: typer.Typer) -> None:
    @app.command("federate")
    def federate(
        dataset: str = typer.Option(
            ..., "--dataset", help="Built-in dataset: digits, breast_cancer or wine."
        ),
        clients: int = typer.Option(3, "--clients", help="Number of SuperNodes (≥ 2)."),
        rounds: int = typer.Option(3, "--rounds", help="FedAvg rounds."),
        secagg: bool = typer.Option(False, "--secagg", help="Secure aggregation (SecAgg+)."),
        dp_noise: float | None = typer.Option(None, "--dp-noise", help="DP noise multiplier (needs --clip)."),
        clip: float | None = typer.Option(None, "--clip", help="DP clipping norm of each client's update."),
        dp_side: str = typer.Option(
            "server", "--dp-side", help="Where updates are clipped: server or client."
        ),
        delta: float = typer.Option(1e-5, "--delta", help="δ for the reported ε."),
        local_epochs: int = typer.Option(5, "--local-epochs", help="Local epochs per round."),
        seed: int = typer.Option(0, "--seed", help="Seed for the split and the local training."),
        model_out: Path | None = typer.Option(None, "--model-out", help="Where to write the global model."),
        push: str | None = typer.Option(
            None, "--push", help="Push the global model to the registry as NAME."
        ),
        env: str | None = typer.Option(
            None, "--env", help="Environment for --push (default: the project's)."
        ),
        timeout: float = typer.Option(300.0, "--timeout", help="Seconds before the run is abandoned."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Train a softmax model with FedAvg across K local SuperNodes; report accuracy per round and ε.

        Inside a project home, a DP run first reserves its ε on the dataset's privacy ledger (refused before
        any Flower process starts when the budget is short) and settles it after."""
        from bastion.privacy.federated import federate as run
        from bastion.vault.project import home_exists

        vault = None
        if push is not None or home_exists(home):
            from bastion.cli._common import open_vault

            vault = open_vault(home)
        from bastion.cli._progress import interactive, step

        show = interactive(json_output=fmt is OutputFormat.json)
        try:
            with step(f"federating {dataset}: {clients} clients, {rounds} rounds", enabled=show):
                result = run(
                    dataset=dataset,
                    clients=clients,
                    rounds=rounds,
                    secagg=secagg,
                    dp_noise=dp_noise,
                    clip=clip,
                    dp_side=dp_side,
                    delta=delta,
                    local_epochs=local_epochs,
                    seed=seed,
                    timeout_s=timeout,
                    home=home,
                    model_out=model_out,
                    vault=vault,
                    push=push,
                    env=env,
                )
            out = result.to_dict()
            if result.spend_id is not None and vault is not None and result.ledger_dataset is not None:
                from bastion.privacy.ledger import ledger_for_vault

                status = ledger_for_vault(vault).status(result.ledger_dataset)
                out["budget"] = status.epsilon_summary()
        finally:
            if vault is not None:
                vault.close()
        if fmt is OutputFormat.json:
            print_json(out)
            return
        for r in result.rounds:
            typer.echo(f"round {r.round}: accuracy {r.accuracy:.4f}  ({r.seconds:.1f} s)")
        extras = []
        if result.secagg:
            extras.append("SecAgg+")
        if result.epsilon is not None:
            extras.append(
                f"ε = {result.epsilon:.3f} (δ = {result.delta:g}, client-level, {result.dp_side}-side)"
            )
        typer.echo(
            f"final accuracy {result.final_accuracy:.4f} over {result.clients} clients, TLS"
            + (f", {', '.join(extras)}" if extras else "")
        )
        if result.epsilon is not None:
            typer.echo(f"note: {out['noise_source']['note']}")
        if "budget" in out:
            spent, total = out["budget"]["epsilon_spent"], out["budget"]["epsilon_budget"]
            typer.echo(f"ledger {result.dataset}: spent ε={spent:.4f} of {total:.4g}")
        elif result.epsilon is not None:
            typer.echo("no project home: the privacy ledger was not charged")
        typer.echo(f"model: {out['model_ref'] or result.model_path}")
