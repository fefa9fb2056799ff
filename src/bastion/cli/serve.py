"""``bastion serve MODEL_REF``: the secure gateway (OIP v2 over TLS), or its hardened k8s manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
from bastion.errors import ConfigError, ServiceError

MAX_TOKEN_FILE = 4096
RESPONSE_KEY_ENV = "BASTION_RESPONSE_KEY"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model_ref: str = typer.Argument(..., help="Model to serve: NAME, NAME:VERSION or NAME@ENV."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        port: int = typer.Option(8080, "--port", help="Port to bind."),
        workers: int = typer.Option(1, "--workers", help="Worker processes (above 1 needs --redis)."),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM)."),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
        redis: str | None = typer.Option(
            None, "--redis", help="Redis URL for shared rate limits and monitor."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="Gateway settings (TOML with a [serve] table)."
        ),
        insecure: bool = typer.Option(
            False, "--insecure", help="Plain HTTP; allowed only on a loopback address."
        ),
        deployment: str | None = typer.Option(
            None, "--deployment", help="Print a hardened deployment manifest instead of serving ('k8s')."
        ),
        image: str = typer.Option(
            "bastion-ml:latest",
            "--image",
            help="Container image for --deployment; pin a digest (NAME@sha256:…) or check-deploy flags it.",
        ),
        check: bool = typer.Option(
            False,
            "--check",
            help="Verify, release the key, scan and load the model, then exit without serving.",
        ),
        approve: bool = typer.Option(
            False,
            "--approve",
            help="Approve this gateway configuration for the model's key release (admin), then exit.",
        ),
        server: str | None = typer.Option(
            None,
            "--server",
            help="Take the model from this bastion server (default $BASTION_URL) with a workload token "
            "($BASTION_TOKEN or --token-file); no passphrase, no home.",
        ),
        ca: Path | None = typer.Option(None, "--ca", help="CA bundle of --server (default $BASTION_CA)."),
        token_file: Path | None = typer.Option(
            None, "--token-file", help="Read the workload token from this file (with --server)."
        ),
        attester_key: Path | None = typer.Option(
            None,
            "--attester-key",
            help="With --server: the gateway's Ed25519 attester key (PEM), answers the release challenge.",
        ),
        response_key: Path | None = typer.Option(
            None,
            "--response-key",
            help="With --server: the public key (PEM) the server signs the response state with (on its "
            "home: `bastion log key`; default $BASTION_RESPONSE_KEY). Without it the first answer's key is "
            "pinned, with a warning.",
        ),
        gateway_attester: Path | None = typer.Option(
            None,
            "--gateway-attester",
            help="With --approve: trust this gateway attester public key (PEM) for a --server gateway.",
        ),
        admin_cidr: list[str] = typer.Option(
            [],
            "--admin-cidr",
            help="With --deployment: admin network allowed to reach the server, repeatable.",
        ),
        server_egress: list[str] = typer.Option(
            [],
            "--server-egress",
            help="With --deployment: CIDR:PORT the server may reach (DB, witness), repeatable.",
        ),
        pkcs11_pin_env: str | None = typer.Option(
            None,
            "--pkcs11-pin-env",
            help="With --deployment: the server's HSM PIN variable (from its Secret).",
        ),
        witness: list[str] | None = WITNESS_OPTION,
        require_witness: bool = REQUIRE_WITNESS_OPTION,
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Serve a verified registry model behind authentication, rate limits and the extraction monitor."""
        outside_witnesses(witness, require_witness, home)
        from bastion.serve.server import ServeOptions, approve_gateway, build_gateway, check_options, run

        options = ServeOptions(
            model_ref=model_ref,
            host=host,
            port=port,
            workers=workers,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            redis_url=redis,
            config_file=str(config) if config else None,
            insecure=insecure,
            home=str(home) if home else None,
        )
        if deployment is not None:
            from bastion.serve.k8s import manifest, render, secret_instructions

            if deployment != "k8s":
                raise ConfigError(f"unknown deployment target {deployment!r} (supported: k8s)")
            objects = manifest(  # replicas share limits only through Redis: one replica without it
                model_ref=model_ref,
                image=image,
                redis_port=6379 if redis else None,
                replicas=2 if redis else 1,
                admin_cidrs=admin_cidr,
                pkcs11_pin_env=pkcs11_pin_env,
                server_egress=server_egress,
            )
            if fmt is OutputFormat.json:
                print_json(objects)
            else:
                typer.echo(render(objects, header=secret_instructions(model_ref=model_ref)), nl=False)
            return
        server = server or os.environ.get("BASTION_URL") or None
        if server is not None:
            _serve_from_server(
                options,
                server=server,
                ca=ca,
                token_file=token_file,
                attester_key=attester_key,
                response_key=response_key,
                check=check,
                approve=approve,
                fmt=fmt,
            )
            return
        if token_file is not None or ca is not None or attester_key is not None or response_key is not None:
            raise ConfigError(
                "--token-file, --ca, --attester-key and --response-key go with --server (or BASTION_URL)"
            )
        if gateway_attester is not None:
            if not approve:
                raise ConfigError("--gateway-attester goes with --approve")
            _approve_remote(options, gateway_attester, fmt)
            return
        check_options(options)
        if approve:
            entry = approve_gateway(options)
            if fmt is OutputFormat.json:
                print_json({"model": model_ref, "config_digest": entry.config_digest, "approved": True})
            else:
                typer.echo(f"key release approved for {model_ref} with config {entry.config_digest[:16]}…")
            return
        if check:
            gateway = build_gateway(options)
            model = gateway.model
            gateway.close()
            summary = {"model": model.name, "version": model.version, "digest": model.digest, "ready": True}
            if fmt is OutputFormat.json:
                print_json(summary)
            else:
                typer.echo(f"{model.name}:{model.version} verified, key released, scanned and loaded")
            return
        run(options, announce=lambda url: typer.echo(f"bastion gateway for {model_ref} on {url}", err=True))


def _workload_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            with open(token_file, "rb") as fh:
                raw = fh.read(MAX_TOKEN_FILE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from exc
        if len(raw) > MAX_TOKEN_FILE:
            raise ConfigError(f"{token_file} is too large to be a token")
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{token_file} does not hold a bastion token") from exc
    token = os.environ.get("BASTION_TOKEN")
    if token is None:
        raise ConfigError(
            "--server needs the gateway's workload token: BASTION_TOKEN or --token-file",
            hint="an admin creates one: bastion token create --role gateway --model NAME --env prod",
        )
    return token


def _response_key(path: Path | None) -> bytes | None:
    """The pinned response-state key: ``--response-key`` or ``$BASTION_RESPONSE_KEY`` (PEM), else None."""
    from bastion.errors import IntegrityError
    from bastion.files import read_regular_file

    named = path if path is not None else os.environ.get(RESPONSE_KEY_ENV) or None
    if named is None:
        return None
    try:
        return read_regular_file(Path(named), limit=64 << 10, follow_symlinks=True)  # a secret mount
    except (OSError, IntegrityError) as exc:
        raise ConfigError(f"cannot read the response-state key {named}") from exc


def _serve_from_server(
    options: Any,
    *,
    server: str,
    ca: Path | None,
    token_file: Path | None,
    attester_key: Path | None,
    check: bool,
    response_key: Path | None = None,
    approve: bool,
    fmt: OutputFormat,
) -> None:
    """``--server``: pull the model with the workload token, verify, scan, load; never open a key ring."""
    import bastion.client as client
    from bastion.client.gateway import RemoteAuditSink, attested_pull, introspect, response_state
    from bastion.respond.gate import RemoteResponseGate
    from bastion.serve.remote import (
        build_remote_gateway,
        check_remote_options,
        load_attester_key,
        run_remote,
        server_token_checker,
    )

    if approve:
        raise ConfigError("--approve runs on the home (as an admin), not with --server")
    check_remote_options(options)
    if attester_key is None:
        raise ConfigError(
            "--server needs --attester-key: the server releases a model to a gateway only on its evidence",
            hint="approve its public key on the server's home: serve MODEL --approve --gateway-attester PUB",
        )
    key = load_attester_key(attester_key)
    ca_file = str(ca) if ca is not None else os.environ.get(client.CA_ENV) or None
    token = _workload_token(token_file)
    os.environ.pop("BASTION_PASSPHRASE", None)  # this process never needs it: keep it from anything below
    remote = client.connect(server, token=token, ca=ca_file)

    class _Source:
        def attested_pull(self, ref: str, *, out: Any, attest: Any) -> Any:
            return attested_pull(remote, ref, out=out, attest=attest)

    source = _Source()
    checker = server_token_checker(lambda caller: introspect(remote, caller))  # quiet on failures
    # `bastion respond`'s signed state, from the server, verified here (fails closed); refreshed every 2 s
    gate = RemoteResponseGate(lambda: response_state(remote), public_key_pem=_response_key(response_key))
    try:
        if gate.state() is None:
            raise ServiceError(
                f"{server} did not send a response state that verifies ({gate.last_error}): refusing to serve"
            )
        if check:
            gateway = build_remote_gateway(options, source=source, verify_token=checker, attester_key=key)
            model = gateway.model
            gateway.close()
            if fmt is OutputFormat.json:
                print_json(
                    {"model": model.name, "version": model.version, "digest": model.digest, "ready": True}
                )
            else:
                typer.echo(f"{model.name}:{model.version} pulled from {server}, verified, scanned and loaded")
            return
        run_remote(
            options,
            source=source,
            verify_token=checker,
            attester_key=key,
            announce=lambda url: typer.echo(
                f"bastion gateway for {options.model_ref} (from {server}) on {url}", err=True
            ),
            response_gate=gate.start(),
            audit=RemoteAuditSink(remote),  # request records in batches into the server's log
        )
    finally:
        gate.close()
        remote.close()


def _approve_remote(options: Any, public_pem: Path, fmt: OutputFormat) -> None:
    """``--approve --gateway-attester PUB.pem``: on the home, as an admin (see ``approve_remote_gateway``)."""
    import dataclasses

    from bastion.files import read_regular_file
    from bastion.serve.remote import approve_remote_gateway
    from bastion.vault import open_vault

    try:
        pem = read_regular_file(public_pem, limit=64 << 10)
    except FileNotFoundError as exc:
        raise ConfigError(f"no such file: {public_pem}") from exc
    with open_vault(home=options.home) as vault:
        version = vault.show(options.model_ref, _log=False)  # approve exactly this version (NAME:VERSION)
        exact = dataclasses.replace(options, model_ref=version.ref)
        entry = approve_remote_gateway(vault=vault, options=exact, attester_public_pem=pem)
    if fmt is OutputFormat.json:
        print_json(
            {
                "model": options.model_ref,
                "version": version.ref,
                "manifest_digest": version.manifest_digest,
                "config_digest": entry.config_digest,
                "gateway": True,
            }
        )
    else:
        typer.echo(
            f"gateway release approved for {version.ref} only (manifest {version.manifest_digest[:19]}…; a "
            f"later version needs its own approval) with config {entry.config_digest[:16]}… "
            f"({len(entry.attesters)} attester key(s))"
        )
