"""``bastion privacy budget set|show``, ``bastion privacy query`` and ``bastion privacy audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json
from bastion.errors import PolicyViolation


def _ledger(vault: Any) -> Any:
    """The vault's ledger: local (``ledger_for_vault``) or the server's (``$BASTION_URL``)."""
    if getattr(vault, "remote", False):
        from bastion.client.data import RemoteLedger

        return RemoteLedger(vault)
    from bastion.privacy.ledger import ledger_for_vault

    return ledger_for_vault(vault)


def register(app: typer.Typer) -> None:
    privacy = typer.Typer(
        help="Differential privacy: budgets, DP queries, the empirical DP audit.", no_args_is_help=True
    )
    app.add_typer(privacy, name="privacy")
    budget = typer.Typer(help="Privacy budgets per dataset (the ledger).", no_args_is_help=True)
    privacy.add_typer(budget, name="budget")

    @budget.command("set")
    def budget_set(
        dataset: str = typer.Argument(
            ..., help="A built-in dataset (digits, breast_cancer, wine), a data file, or sha256:<digest>."
        ),
        epsilon: float = typer.Option(..., "--epsilon", help="Total ε the dataset may ever spend."),
        delta: float = typer.Option(1e-4, "--delta", help="Total δ the dataset may ever spend."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Set (or change) a dataset's privacy budget (admin: access:manage).

        The budget is keyed by the data's SHA-256 digest, so a copied or renamed file shares it. There is
        no default budget: DP training, DP queries and audits of a dataset without one are refused."""
        from bastion.privacy.training import resolve_ledger_dataset

        key, label = resolve_ledger_dataset(dataset)
        with open_vault(home) as vault:
            status = _ledger(vault).set_budget(key, epsilon=epsilon, delta=delta, label=label)
        _print_status(status, fmt)

    @budget.command("show")
    def budget_show(
        dataset: str | None = typer.Argument(
            None, help="A built-in dataset, a data file or sha256:<digest> (default: every budget)."
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Show a dataset's budget and every spend against it."""
        from bastion.privacy.training import resolve_ledger_dataset

        with open_vault(home) as vault:
            ledger = _ledger(vault)
            names = [resolve_ledger_dataset(dataset)[0]] if dataset else ledger.datasets()
            statuses = [ledger.status(n) for n in names]
        if fmt is OutputFormat.json:
            print_json(statuses[0].to_dict() if dataset else [s.to_dict() for s in statuses])
            return
        if not statuses:
            typer.echo("no privacy budgets set")
        for s in statuses:
            _print_status(s, fmt)

    @privacy.command("query")
    def query(
        kind: str = typer.Argument(..., help="count, sum, mean, histogram or quantile."),
        column: str = typer.Option(..., "--column", help="Column to aggregate (a feature name, or target)."),
        epsilon: float = typer.Option(..., "--epsilon", help="ε this query spends."),
        dataset: str | None = typer.Option(None, "--dataset", help="Built-in dataset."),
        data: Path | None = typer.Option(None, "--data", help="A CSV file with a header row."),
        lower: float | None = typer.Option(
            None, "--lower", help="Public lower bound (sum/mean/quantile/bins)."
        ),
        upper: float | None = typer.Option(None, "--upper", help="Public upper bound."),
        bins: int = typer.Option(10, "--bins", help="Equal-width bins of a numeric histogram."),
        category: list[str] = typer.Option([], "--category", help="Categories of a histogram (repeatable)."),
        quantile: float = typer.Option(0.5, "--quantile", help="Which quantile (0..1)."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Answer one DP aggregate query (OpenDP), charged to the dataset's privacy budget first.

        KIND is one of: count, sum, mean (need --lower/--upper), histogram (--bins or --category),
        quantile (--quantile, --lower/--upper)."""
        from bastion.privacy.ledger import ledger_for_vault
        from bastion.privacy.queries import dp_query, load_column
        from bastion.privacy.training import ledger_key

        values = load_column(column=column, dataset=dataset, data=data)
        key = ledger_key(dataset if dataset is not None else str(data))
        with open_vault(home) as vault:
            ledger = ledger_for_vault(vault)
            result = dp_query(
                values=values,
                kind=kind,
                epsilon=epsilon,
                lower=lower,
                upper=upper,
                bins=bins,
                categories=category or None,
                quantile=quantile,
                ledger=ledger,
                dataset=key,
                dataset_label=dataset if dataset is not None else str(data),
                column=column,
            )
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
            return
        if isinstance(result.value, list):
            typer.echo(f"DP histogram of {column} (ε={result.epsilon:g}):")
            for label, count in zip(result.labels, result.value, strict=True):
                typer.echo(f"  {label}\t{count}")
        else:
            typer.echo(
                f"DP {kind} of {column}: {result.value:.6g} (ε={result.epsilon:g}, {result.mechanism})"
            )

    @privacy.command("audit")
    def audit(
        epsilon: float = typer.Option(..., "--epsilon", help="The claimed ε to audit."),
        dataset: str = typer.Option("digits", "--dataset", help="Built-in dataset to train on."),
        delta: float = typer.Option(1e-5, "--delta", help="The claimed δ."),
        canaries: int = typer.Option(1000, "--canaries", help="Number of canaries m."),
        epochs: int = typer.Option(5, "--epochs", help="Epochs of the audited DP-SGD run."),
        confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the lower bound."),
        seed: int = typer.Option(0, "--seed", help="Seed of the canaries and the run."),
        unsafe_noise_multiplier: float | None = typer.Option(
            None, "--unsafe-noise-multiplier", help="Force this noise (e.g. 0) to check the audit catches it."
        ),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """One-run DP audit (Steinke, Nasr, Jagielski 2023): ε lower bound beside the claim; 1 if above."""
        from bastion.models.data import load_dataset
        from bastion.privacy.audit import audit_dp_sgd
        from bastion.vault.project import home_exists

        ds = load_dataset(dataset, seed=seed)
        kwargs: dict[str, Any] = {
            "dataset": ds,
            "epsilon": epsilon,
            "delta": delta,
            "canaries": canaries,
            "epochs": epochs,
            "confidence": confidence,
            "seed": seed,
            "unsafe_noise_multiplier": unsafe_noise_multiplier,
        }
        from bastion.cli._progress import interactive, step

        with step(
            f"auditing DP-SGD on {dataset}: {canaries} canaries, {epochs} epochs",
            enabled=interactive(json_output=fmt is OutputFormat.json),
        ):
            result = _audit_with_ledger(home, ds, kwargs) if home_exists(home) else audit_dp_sgd(**kwargs)
        if fmt is OutputFormat.json:
            print_json(result.to_dict())
        else:
            verdict = "consistent with the claim" if result.consistent else "VIOLATES the claim"
            typer.echo(
                f"ε lower bound {result.epsilon_lower_bound:.3f} at {result.confidence:.0%} confidence "
                f"vs claimed ε={result.claimed_epsilon:g}: {verdict} "
                f"({result.correct}/{result.guesses} correct guesses, "
                f"{result.canaries} canaries, noise {result.effective_noise_multiplier:.4g})"
            )
        if not result.consistent:
            raise PolicyViolation(
                f"empirical ε ≥ {result.epsilon_lower_bound:.3f} exceeds the claimed "
                f"ε={result.claimed_epsilon:g}"
            )


def _audit_with_ledger(home: Path | None, ds: Any, kwargs: dict[str, Any]) -> Any:
    """Run the audit charged to the project's ledger (the audited run trains on the dataset)."""
    from bastion.errors import BudgetExhausted
    from bastion.privacy.audit import audit_dp_sgd
    from bastion.privacy.ledger import ledger_for_vault
    from bastion.privacy.training import dataset_ledger_key

    key = dataset_ledger_key(ds)
    with open_vault(home) as vault:
        vault.access.check(vault.identity, "audit:run")
        ledger = ledger_for_vault(vault)
        if kwargs["unsafe_noise_multiplier"] is not None:
            if ledger.has_budget(key):
                raise BudgetExhausted(
                    f"dataset {ds.name!r} has a privacy budget: "
                    "an audit with forced noise would spend an unbounded ε",
                    hint="run the demonstration outside this project home "
                    "(e.g. --home of an empty directory), or on a dataset without a budget",
                )
            return audit_dp_sgd(**kwargs)
        with ledger.charge(
            datasets=key,
            epsilon=kwargs["epsilon"],
            delta=kwargs["delta"],
            kind="audit",
            labels={key: ds.name},
        ) as r:
            result = audit_dp_sgd(**kwargs)
            ledger.settle(r, epsilon=kwargs["epsilon"], delta=kwargs["delta"], details=result.to_dict())
        return result


def _print_status(status: Any, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print_json(status.to_dict())
        return
    name = f"{status.label} ({status.dataset})" if status.label else status.dataset
    typer.echo(
        f"{name}: ε spent {status.epsilon_spent:.4f} of {status.epsilon_budget:.4g} "
        f"(remaining {status.epsilon_remaining:.4f}), "
        f"δ spent {status.delta_spent:.3g} of {status.delta_budget:.3g}"
    )
    for s in status.spends:
        typer.echo(f"  {s.created_at}  {s.kind:5s}  ε={s.epsilon:.4f}  {s.status}  by {s.actor}")


__all__ = ["register"]
