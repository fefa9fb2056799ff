"""``bastion guard``: scan a prompt or an output, run the guarded proxy, red-team an endpoint.

* ``guard scan TEXT|-`` — exit 1 when the prompt is flagged (``--output`` checks generated text instead);
* ``guard templates suggest LOG`` — propose ``[guard.templates]`` entries from a log of the application's
  prompts (each with the detector's verdict on its own text, less the lines of ``--operator-text``; flagged
  ones left out unless asked for);
* ``guard serve --upstream URL`` — the OpenAI-compatible guarded proxy (tokens, roles, limits, audit);
* ``guard probe --url URL`` — send the probes, write JSON (+ ``--html``), exit 1 when one got through, 2 when
  the endpoint could not be tested (probes not delivered).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bastion.cli._common import (
    FORMAT_OPTION,
    HOME_OPTION,
    REQUIRE_WITNESS_OPTION,
    WITNESS_OPTION,
    OutputFormat,
    outside_witnesses,
    print_json,
)
from bastion.errors import ConfigError, InvalidInput

EXIT_FINDING = 1


def register(app: typer.Typer) -> None:
    guard = typer.Typer(
        help="GenAI runtime inspection: prompt/output scanning, guarded proxy, red-team probes."
    )
    app.add_typer(guard, name="guard")

    @guard.command("scan")
    def scan(
        text: str = typer.Argument(..., help="The text to scan, or - to read it from stdin."),
        channel: str = typer.Option("user", "--channel", help="user, retrieved or tool."),
        output: bool = typer.Option(False, "--output", help="Check generated text with the output policy."),
        canary: list[str] = typer.Option(
            [], "--canary", help="A canary token that must not appear (output)."
        ),
        template: list[Path] = typer.Option(
            [],
            "--template",
            help="A file holding one of your application's prompt templates ({slot} placeholders): "
            "a prompt that fills it exactly is judged by its slots only (the file's last newline is not part "
            "of the template). Repeatable.",
        ),
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Scan one prompt (or, with --output, one generated answer). Exit 1 when flagged."""
        from bastion.guard import OutputContext, PromptTemplate, scan_output, scan_prompt

        body = sys.stdin.read() if text == "-" else text
        if output:
            verdict = scan_output(body, context=OutputContext(canaries=tuple(canary)))
            doc = verdict.to_dict()
            bad = verdict.action != "allow"
            line = f"{verdict.action}: {', '.join(verdict.findings) or 'nothing found'}"
        else:
            if channel not in ("user", "retrieved", "tool"):
                raise InvalidInput("--channel must be user, retrieved or tool")
            templates = []
            for path in template:
                try:
                    text_of = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError(f"cannot read the template {path}") from exc
                templates.append(PromptTemplate.parse(path.stem, text_of.removesuffix("\n")))
            pv = scan_prompt(body, channel=channel, templates=templates)  # type: ignore[arg-type]
            doc, bad = pv.to_dict(), pv.flagged
            line = (
                f"flagged ({pv.score:.3f} >= {pv.threshold:.3f}): {', '.join(pv.categories)} "
                f"[{', '.join(pv.atlas)}]"
                if pv.flagged
                else f"clean ({pv.score:.3f} < {pv.threshold:.3f})"
            )
        if fmt is OutputFormat.json:
            print_json(doc)
        else:
            typer.echo(line)
        if bad:
            raise typer.Exit(EXIT_FINDING)

    tpl = typer.Typer(help="Your application's prompt templates: suggest them from a log of its prompts.")
    guard.add_typer(tpl, name="templates")

    @tpl.command("suggest")
    def templates_suggest(
        log: Path = typer.Argument(
            ...,
            help='JSON lines of the prompts your application sent: {"text": ..., "identity": ...} or text.',
        ),
        min_support: int = typer.Option(20, "--min-support", help="Prompts that must fill a template."),
        min_identities: int = typer.Option(
            3, "--min-identities", help="Distinct identities among them (0: the log names none)."
        ),
        include_flagged: bool = typer.Option(
            False,
            "--include-flagged",
            help="Also write templates whose own text the detector flags (review them first).",
        ),
        out: Path | None = typer.Option(None, "--out", help="Write the [guard.templates] table here."),
        channel: str = typer.Option(
            "user",
            "--channel",
            help="The channel LOG's prompts were sent on (user, retrieved, tool); templates apply there.",
        ),
        operator_text: list[Path] = typer.Option(
            [],
            "--operator-text",
            help="A file of your application's own prompt text (system prompt, prompt-building strings; "
            "{placeholders} allowed); its lines in a template are yours and not judged. Repeatable.",
        ),
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Propose [guard.templates] entries from LOG. Review them: register only your application's text."""
        import json
        from datetime import UTC, datetime

        from bastion.guard import suggest_templates
        from bastion.guard.infer import MAX_OPERATOR_CHARS

        own: list[str] = []
        for path in operator_text:
            try:
                # a regular file only (a FIFO would hang, /dev/zero never ends: round 27 review L3), read
                # no further than the limit
                if not path.exists():
                    raise ConfigError(f"cannot read the operator text {path}: no such file")
                if not path.is_file():
                    raise ConfigError(f"the operator text {path} is not a regular file")
                with path.open("rb") as fh:
                    raw = fh.read(4 * MAX_OPERATOR_CHARS + 1)
                if len(raw) > 4 * MAX_OPERATOR_CHARS:
                    raise InvalidInput(f"{path}: operator text over {MAX_OPERATOR_CHARS:,} characters")
                text = raw.decode("utf-8-sig")
                if not text.strip():
                    raise InvalidInput(f"the operator text {path} is empty")
                own.append(text)
            except (OSError, UnicodeDecodeError):
                raise ConfigError(f"cannot read the operator text {path} (UTF-8 text)") from None
        prompts = _read_prompt_log(log)
        if min_identities and not any(ident for _, ident in prompts):
            raise InvalidInput(
                f"{log} names no identities: a template seen only from unknown senders may hold an "
                "attacker's text; pass --min-identities 0 to accept that"
            )
        found = suggest_templates(
            prompts,
            min_support=min_support,
            min_identities=min_identities,
            channel=channel,
            operator_text=own or None,
        )
        kept = [s for s in found if include_flagged or not s.literal_flagged]
        senders = len({ident for _, ident in prompts if ident is not None})
        lines = [
            f"# suggested by bastion guard templates suggest from {log.name} ({len(prompts)} prompts), "
            f"{datetime.now(UTC):%Y-%m-%d}",
            "# review each: register only text your application itself sends",
            "[guard.templates]",
        ]
        for s in found:  # a flagged one left out is written commented out, with what flagged it (the review)
            state = "FLAGGED: register only if you wrote this text" if s.literal_flagged else "clean"
            if s.vouch_applied:
                verdict = (
                    f"its own text scores {s.whole_score:.3f} whole and {s.literal_score:.3f} without the "
                    f"{s.vouched:.0%} of it in your operator text ({state})"
                )
            else:
                verdict = f"its own text scores {s.literal_score:.3f} ({state})"
                if s.vouched:
                    few = (
                        f"{s.identities} of the log's {senders} identities send it"
                        if senders
                        else f"{s.support} of the log's {len(prompts)} prompts fill it"
                    )
                    verdict += (
                        f"; {s.vouched:.0%} of it is in your operator text, but only {few}, so it was "
                        "judged whole"
                    )
            lines.append(
                f"# {s.template.name}: fills {s.support} prompts from {s.identities} identities; {verdict}"
            )
            if s.vouched_flagged and not s.follows_operator:
                lines.append(
                    "#   it does not follow your operator text from start to end (slots where your "
                    "placeholders are), so your lines below were judged"
                )
            for line in s.vouched_flagged:
                shown = line if len(line) <= 160 else line[:157] + "..."
                lines.append(f"#   your line, flagged on its own: {json.dumps(shown, ensure_ascii=False)}")
            if s.literal_flagged:
                shown = s.flagged_by if len(s.flagged_by) <= 160 else s.flagged_by[:157] + "..."
                lines.append(
                    f"#   flagged ({s.flagged_channel} channel): {json.dumps(shown, ensure_ascii=False)}"
                )
            chans = ", ".join(json.dumps(c) for c in s.template.channels)
            left_out = "" if s in kept else "# (left out: --include-flagged) "
            lines.append(
                f"{left_out}{s.template.name} = {{ template = {json.dumps(s.text, ensure_ascii=False)}, "
                f"channels = [{chans}] }}"
            )
        table = "\n".join(lines) + "\n"
        if out is not None:
            try:
                out.write_text(table, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
        if fmt is OutputFormat.json:
            print_json(
                {
                    "prompts": len(prompts),
                    "suggestions": [s.to_dict() for s in found],
                    "written": [s.template.name for s in kept] if out is not None else [],
                }
            )
        else:
            held = len(found) - len(kept)
            note = f"; {held} whose own text is flagged left out (--include-flagged)" if held else ""
            if out is None:
                typer.echo(table, nl=False)
            typer.echo(
                f"{len(kept)} template(s) suggested from {len(prompts)} prompts{note}", err=out is None
            )

    @guard.command("serve")
    def serve(
        upstream: str = typer.Option(..., "--upstream", help="OpenAI-compatible upstream base URL."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        port: int = typer.Option(8090, "--port", help="Port to bind."),
        mode: str = typer.Option("block", "--mode", help="block, redact or shadow (log only)."),
        canary: list[str] = typer.Option([], "--canary", help="Canary token planted in your system prompt."),
        system_prompt_file: Path | None = typer.Option(
            None,
            "--system-prompt-file",
            help="Your system prompt: overlapping runs of it in answers are blocked.",
        ),
        tokens_per_minute: int = typer.Option(20_000, "--tokens-per-minute", help="Per consumer identity."),
        upstream_key_env: str | None = typer.Option(
            None, "--upstream-key-env", help="Environment variable holding the upstream's API key."
        ),
        insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP (loopback only)."),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        unsafe_fail_open: bool = typer.Option(
            False, "--unsafe-fail-open", help="Pass requests when the detector fails (default: 503)."
        ),
        config_file: Path | None = typer.Option(
            None, "--config", help="Settings file with a [guard] table (output policy, roles, deny lists)."
        ),
        witness: list[str] | None = WITNESS_OPTION,
        require_witness: bool = REQUIRE_WITNESS_OPTION,
        home: Path | None = HOME_OPTION,
    ) -> None:
        """Serve the guarded OpenAI-compatible proxy in front of --upstream."""
        import os

        import uvicorn

        from bastion.cli._common import open_vault
        from bastion.serve.config import ConnectionsConfig
        from bastion.serve.connections import proxy_options
        from bastion.serve.guard_proxy import ProxyConfig, guard_proxy_for_vault
        from bastion.serve.tls import is_loopback

        outside_witnesses(witness, require_witness, home)
        if insecure and not is_loopback(host):
            raise ConfigError("--insecure (plain HTTP) is allowed only on a loopback address")
        if not insecure and not (tls_cert and tls_key):
            raise ConfigError("give --tls-cert and --tls-key, or --insecure on a loopback address")
        key = None
        if upstream_key_env:
            key = os.environ.get(upstream_key_env)
            if not key:
                raise ConfigError(f"${upstream_key_env} is empty")
        system_prompt = system_prompt_file.read_text(encoding="utf-8") if system_prompt_file else None
        settings: dict = {"tokens_per_minute": {"consumer": tokens_per_minute}}
        if config_file is not None:
            from bastion.guard.config import load_guard_settings

            settings.update(load_guard_settings(config_file))
        settings.setdefault("mode", mode)
        if mode != "block":  # an explicit --mode wins over the file
            settings["mode"] = mode
        settings["unsafe_fail_open"] = unsafe_fail_open or bool(settings.get("unsafe_fail_open", False))
        config = ProxyConfig(
            upstream=upstream,
            canaries=tuple(canary),
            system_prompt=system_prompt,
            upstream_api_key=key,
            **settings,
        )
        vault = open_vault(home)
        # refused tokens counted per client address in the request records (no audit entry each), every
        # request recorded, the per-address limits before any token lookup: as at the gateway
        proxy = guard_proxy_for_vault(vault=vault, config=config)
        typer.echo(f"bastion guard: {'http' if insecure else 'https'}://{host}:{port} -> {upstream} ({mode})")
        uvicorn.run(
            proxy.app(),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ssl_certfile=None if insecure else str(tls_cert),
            ssl_keyfile=None if insecure else str(tls_key),
            **proxy_options(ConnectionsConfig()),  # X-Forwarded-For never names the client
        )

    @guard.command("probe")
    def probe(
        url: str = typer.Option(
            ..., "--url", help="Endpoint base URL (the proxy or any OpenAI-compatible API)."
        ),
        model: str = typer.Option("default", "--model", help="Model name to send."),
        token_env: str = typer.Option(
            "BASTION_TOKEN", "--token-env", help="Env variable holding the bearer token."
        ),
        out: Path | None = typer.Option(None, "--out", help="Write the JSON report here."),
        html_out: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
        min_delivered: float = typer.Option(
            1.0,
            "--min-delivered",
            help="Fraction of probes that must be delivered (answered or refused); below it the run is "
            "untested (exit 2). Errored probes (404, 429, 5xx, not OpenAI) test nothing.",
        ),
        canary: str | None = typer.Option(
            None, "--canary", help="Canary to plant and look for (default: the suite's own)."
        ),
        max_wait: float = typer.Option(
            180.0, "--max-wait", help="Seconds in all to wait on 429 Retry-After before a probe errors."
        ),
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Red-team an endpoint with injection/jailbreak/exfiltration probes.

        Exit 1 when any got through, 2 when the endpoint could not be tested (probes errored, the benign
        control was not answered), 0 only when every probe was delivered and stopped."""
        import json
        import os

        from bastion.errors import ServiceError
        from bastion.guard.probe import report_html, run_suite
        from bastion.guard.probe_suite import CANARY

        run = run_suite(
            url=url,
            token=os.environ.get(token_env),
            model=model,
            canary=canary or CANARY,
            min_delivered=min_delivered,
            max_wait_s=max_wait,
        )
        report = run.report()
        if out:
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if html_out:
            html_out.write_text(report_html(report), encoding="utf-8")
        if report["verdict"] == "untested":
            raise ServiceError(str(report["untested_reason"]))
        if fmt is OutputFormat.json:
            print_json(report)
        else:
            for r in run.results:
                if r.got_through:
                    api = "stream" if r.stream else "plain"
                    typer.echo(f"GOT THROUGH  {r.id} ({r.category}, {api}): {r.detail}")
            typer.echo(f"{report['got_through']} of {report['probes']} probes got through")
            if report["errored"]:
                typer.echo(f"{report['errored']} of {report['probes']} probes errored (not delivered)")
        if report["got_through"]:
            raise typer.Exit(EXIT_FINDING)


__all__ = ["register"]


def _read_prompt_log(path: Path) -> list[tuple[str, str | None]]:
    """(text, identity) of each line of a JSON-lines prompt log; a malformed line is an error naming it."""
    import json

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt log {path}") from exc
    rows: list[tuple[str, str | None]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidInput(f"{path}:{number}: not a JSON line") from None
        if isinstance(item, str):
            rows.append((item, None))
            continue
        text = item.get("text", item.get("prompt")) if isinstance(item, dict) else None
        ident = item.get("identity") if isinstance(item, dict) else None
        if not isinstance(text, str) or (ident is not None and not isinstance(ident, str)):
            raise InvalidInput(f'{path}:{number}: expected a string or {{"text": ..., "identity": ...}}')
        rows.append((text, ident))
    return rows
