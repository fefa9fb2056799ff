"""``bastion data scan|protect|reveal|risk|catalog``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from bastion.cli import _dataset
from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat, open_vault, print_json
from bastion.errors import InvalidInput

INPUT_FORMAT_OPTION = typer.Option(
    None, "--input-format", help="csv, parquet, jsonl or text (default: by extension)."
)


def _service(vault: Any) -> Any:
    """``bastion.data.service`` for a local vault, ``bastion.client.data`` (same calls) for a server's."""
    if getattr(vault, "remote", False):
        from bastion.client import data as remote

        return remote
    from bastion.data import service

    return service


def _has_project(home: Path | None) -> bool:
    from bastion.config import CONFIG_FILE, home_path

    return (home_path(home) / CONFIG_FILE).is_file()


def _print_scan(report: Any, *, recorded: bool) -> None:
    typer.echo(f"{report.path}  {report.format}  {report.rows} rows  label: {report.label.value}")
    for col in report.columns:
        qi = " quasi-identifier" if col.quasi_identifier else ""
        typer.echo(f"  {col.name}: {col.label.value}{qi} ({col.kind}) -> {col.action.value}")
        for ev in col.entities:
            where = ", ".join(
                f"{r}:{a}-{b}" if col.kind == "free_text" else str(r) for r, a, b in ev.positions
            )
            shapes = " | ".join(ev.shapes)
            typer.echo(
                f"      {ev.entity:<16} {ev.count:>8}  {ev.share:6.1%}  conf {ev.confidence:.2f}  "
                f"via {ev.source}  at {where}  shapes {shapes}"
            )
    if not recorded:
        typer.echo("(not recorded in a catalog: no project home)")


def _reveal_csv(
    file: Path, *, out: Path | None, scope: str, env: str | None, home: Path | None, fmt: OutputFormat
) -> int:
    import csv
    import io

    from bastion.data.io import atomic_output, refuse_overwrite

    if not file.is_file():
        raise InvalidInput(f"no such file: {file}")
    if out is not None:
        refuse_overwrite(file, out)
    with open_vault(home) as vault:
        rows, count, fpe_done, fpe_missing = _service(vault).reveal_table(
            vault, scope=scope, path=file, env=env
        )
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    if out is not None:
        with atomic_output(out) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
    if fmt is OutputFormat.json:
        print_json(
            {"revealed": count, "scope": scope, "fpe_columns": fpe_done, "not_revealed": fpe_missing}
            | ({"out": str(out)} if out is not None else {})
        )
    else:
        if out is None:
            sys.stdout.write(buf.getvalue())
        where = f" -> {out}" if out is not None else ""
        extra = f" (FF1 columns: {', '.join(fpe_done)})" if fpe_done else ""
        typer.echo(f"revealed {count} values{extra}{where}", err=out is None)
    if fpe_missing == ["?"]:
        typer.echo(
            f"not revealed: no protect run is recorded for {file.name}'s digest, so FF1-encrypted columns "
            "(if any) are left as they are; reveal them with: bastion data reveal VALUE --fpe",
            err=True,
        )
        return 1
    if fpe_missing:
        typer.echo(
            f"not revealed: FF1 columns {', '.join(fpe_missing)} are missing from {file.name}", err=True
        )
        return 1
    return 0


def register(app: typer.Typer) -> None:
    data = typer.Typer(
        help="PII discovery, classification, tokenization and re-identification risk.", no_args_is_help=True
    )
    app.add_typer(data, name="data")

    @data.command("scan")
    def scan(
        path: Path = typer.Argument(..., help="CSV, Parquet, JSON Lines or text file."),
        policy: Path | None = typer.Option(None, "--policy", help="Policy TOML (labels and actions)."),
        input_format: str | None = INPUT_FORMAT_OPTION,
        no_presidio: bool = typer.Option(False, "--no-presidio", help="Skip Presidio's extra recognizers."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
        engine: str | None = _dataset.ENGINE_OPTION,
        cluster: str | None = _dataset.CLUSTER_OPTION,
        workers: int | None = _dataset.WORKERS_OPTION,
    ) -> None:
        """Detect PII per column (or text span) and classify FILE (or a partitioned dataset directory)."""
        from bastion.data import load_policy, scan_file, service

        if _dataset.is_dataset(path) or engine is not None or cluster is not None or workers is not None:
            _dataset.scan_dataset_command(
                path=path,
                engine=engine,
                cluster=cluster,
                workers=workers,
                policy=policy,
                input_format=input_format,
                use_presidio=not no_presidio,
                fmt=fmt,
                home=home,
            )
            return
        from bastion.cli._progress import interactive, step

        recorded = _has_project(home)
        pol = load_policy(policy) if policy is not None or not recorded else None
        show = interactive(json_output=fmt is OutputFormat.json)
        if recorded:
            with open_vault(home) as vault, step(f"scanning {path.name}", enabled=show):
                report = service.scan(
                    vault, path=path, fmt=input_format, policy=pol, use_presidio=not no_presidio
                )
        else:
            with step(f"scanning {path.name}", enabled=show):
                report = scan_file(path=path, fmt=input_format, policy=pol, use_presidio=not no_presidio)
        if fmt is OutputFormat.json:
            print_json({**report.to_dict(), "recorded": recorded})
        else:
            _print_scan(report, recorded=recorded)

    @data.command("protect")
    def protect(
        path: Path = typer.Argument(..., help="CSV, Parquet, JSON Lines or text file."),
        out: Path = typer.Option(..., "--out", help="Protected output file (written atomically)."),
        policy: Path | None = typer.Option(None, "--policy", help="Policy TOML overriding the defaults."),
        push: str | None = typer.Option(None, "--push", help="Also push OUT as this dataset name."),
        env: str | None = typer.Option(None, "--env", help="Environment for the data key and the push."),
        input_format: str | None = INPUT_FORMAT_OPTION,
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
        engine: str | None = _dataset.ENGINE_OPTION,
        cluster: str | None = _dataset.CLUSTER_OPTION,
        workers: int | None = _dataset.WORKERS_OPTION,
    ) -> None:
        """Tokenize, encrypt (FF1), mask, hash, generalize or drop columns of FILE into OUT.

        A directory is a partitioned dataset: OUT gets the same layout, one task per partition (resumable)."""
        from bastion.cli._progress import interactive, step
        from bastion.data import load_policy, service

        if _dataset.is_dataset(path) or engine is not None or cluster is not None or workers is not None:
            if push is not None:
                raise InvalidInput("--push takes one file; push a protected dataset directory file by file")
            _dataset.protect_dataset_command(
                path=path, out=out, engine=engine, cluster=cluster, workers=workers, policy=policy, env=env,
                input_format=input_format, home=home, fmt=fmt,
            )  # fmt: skip
            return
        pol = load_policy(policy) if policy is not None else None
        show = interactive(json_output=fmt is OutputFormat.json)
        with open_vault(home) as vault, step(f"protecting {path.name}", enabled=show):
            if getattr(
                vault, "remote", False
            ):  # the server protects with its keys; the policy file goes along
                outcome = _service(vault).protect(
                    vault, path=path, out=out, policy_file=policy, fmt=input_format, push=push, env=env
                )
            else:
                outcome = service.protect(
                    vault, path=path, out=out, policy=pol, fmt=input_format, push=push, env=env
                )
        if fmt is OutputFormat.json:
            print_json(outcome.to_dict())
            return
        result = outcome.result
        typer.echo(f"protected {result.rows} rows -> {result.output} (token scope {result.token_scope!r})")
        for p in result.plan:
            note = ""
            if p.kind in ("free_text", "sparse") and p.name in result.undetected:
                n = result.undetected[p.name]
                fate = "protected whole" if p.fail_closed else "kept"
                note = f"; spans replaced, {n} non-empty cells had no detection ({fate})"
            elif p.label in ("pii", "secret") and p.action.value not in ("keep", "drop"):
                note = "; every non-empty cell"
            typer.echo(f"  {p.name}: {p.label} ({p.kind}) -> {p.action.value}{note}")
        if outcome.pushed is not None:
            typer.echo(f"pushed {outcome.pushed.name}:{outcome.pushed.version}")

    @data.command("reveal")
    def reveal(
        tokens: list[str] = typer.Argument(None, help="Tokens (tok_…) or FF1 values to reveal."),
        scope: str = typer.Option("default", "--scope", help="Token scope the values were protected under."),
        file: Path | None = typer.Option(None, "--file", help="Reveal every token inside this file."),
        out: Path | None = typer.Option(None, "--out", help="With --file: write the revealed file here."),
        fpe: bool = typer.Option(False, "--fpe", help="The values are FF1-encrypted, not tokens."),
        env: str | None = typer.Option(None, "--env", help="Environment of the data key."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> int | None:
        """Detokenize (needs the data:reveal permission; audit-logged).

        With a CSV ``--file`` it reveals every token and every FF1 column that the file's ``protect`` run
        wrote (found by the file's digest); exit 1 and name them when some could not be revealed."""
        from bastion.data.io import atomic_output

        text = None
        if file is not None and file.suffix.lower() in (".csv", ".tsv") and not tokens:
            return _reveal_csv(file, out=out, scope=scope, env=env, home=home, fmt=fmt)
        if file is not None:
            if tokens:
                raise InvalidInput("give tokens or --file, not both")
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"cannot read {file} as UTF-8 text") from exc
        elif out is not None:
            raise InvalidInput("--out needs --file")
        if file is not None and out is not None:
            from bastion.data.io import refuse_overwrite

            refuse_overwrite(file, out)
        with open_vault(home) as vault:
            result = _service(vault).reveal(
                vault, scope=scope, tokens=tuple(tokens or ()), text=text, fpe=fpe, env=env
            )
        if file is not None and out is not None:
            with atomic_output(out) as tmp:
                tmp.write_text(result.values[0], encoding="utf-8")
            typer.echo(f"revealed {result.revealed} tokens -> {out}", err=fmt is OutputFormat.json)
            if fmt is OutputFormat.json:
                print_json({"revealed": result.revealed, "out": str(out), "scope": scope})
        elif fmt is OutputFormat.json:
            print_json({"revealed": result.revealed, "scope": scope, "values": list(result.values)})
        elif file is not None:
            sys.stdout.write(result.values[0])
        else:
            for value in result.values:
                typer.echo(value)
        if file is not None and fpe:
            typer.echo(
                f"not revealed: FF1 values inside {file.name} (only CSV files are revealed by column); "
                "reveal them with: bastion data reveal VALUE --fpe",
                err=True,
            )
            return 1
        return 0

    @data.command("risk")
    def risk(
        path: Path = typer.Argument(..., help="CSV, Parquet or JSON Lines file."),
        quasi_identifiers: str = typer.Option(..., "--quasi-identifiers", help="Comma-separated columns."),
        sensitive: str | None = typer.Option(None, "--sensitive", help="Sensitive column for l-diversity."),
        k: int = typer.Option(5, "--k", help="Target k (exit 1 when the data is below it)."),
        input_format: str | None = INPUT_FORMAT_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
        engine: str | None = _dataset.ENGINE_OPTION,
        cluster: str | None = _dataset.CLUSTER_OPTION,
        workers: int | None = _dataset.WORKERS_OPTION,
    ) -> int:
        """k-anonymity and l-diversity of FILE (or of a whole partitioned dataset directory, exactly)."""
        from bastion.data import assess_risk

        qis = [q.strip() for q in quasi_identifiers.split(",") if q.strip()]
        if _dataset.is_dataset(path) or engine is not None or cluster is not None or workers is not None:
            report: Any = _dataset.risk_dataset_command(
                path=path, engine=engine, cluster=cluster, workers=workers, quasi_identifiers=qis,
                sensitive=sensitive, k=k, input_format=input_format,
            )  # fmt: skip
        else:
            report = assess_risk(path=path, quasi_identifiers=qis, sensitive=sensitive, k=k, fmt=input_format)
        if fmt is OutputFormat.json:
            print_json(report.to_dict())
        else:
            verdict = "meets" if report.passes else "BELOW"
            typer.echo(f"{report.path}: {report.rows} rows, {report.classes} classes over {', '.join(qis)}")
            typer.echo(f"k = {report.k} ({verdict} target {report.target_k})")
            if report.l_diversity is not None:
                typer.echo(f"l-diversity ({sensitive}) = {report.l_diversity}")
            if report.records_below_k:
                shown = ", ".join(map(str, report.violating_rows[:20]))
                typer.echo(
                    f"{report.records_below_k} records in {report.classes_below_k} classes below k; "
                    f"rows: {shown}" + (" …" if report.records_below_k > 20 else "")
                )
        return 0 if report.passes else 1

    @data.command("catalog")
    def catalog(
        dataset: str | None = typer.Option(None, "--dataset", help="Only this dataset (its path)."),
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """The stored classification of every scanned column."""
        from bastion.data.catalog import catalog_entries
        from bastion.errors import NotFound

        resolved = str(Path(dataset).expanduser().resolve()) if dataset is not None else None
        with open_vault(home) as vault:
            vault.access.check(vault.identity, "data:scan")
            entries = catalog_entries(vault.engine, dataset=resolved)
        if dataset is not None and not entries:
            raise NotFound(f"no classification recorded for {resolved}; run: bastion data scan {dataset}")
        if fmt is OutputFormat.json:
            print_json(entries)
            return
        for e in entries:
            ents = ", ".join(f"{k} {v}" for k, v in e["entities"].items()) or "-"
            typer.echo(f"{e['dataset']}\t{e['column_name']}\t{e['label']}\t{e['action']}\t{ents}")
