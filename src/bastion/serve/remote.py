"""A gateway whose model comes from a ``bastion server`` (``bastion serve MODEL --server URL``), not a home.

Issue 11 item 6: the gateway process holds no passphrase, no key ring and no database. Its only credential
is a workload token (``BASTION_TOKEN`` or ``--token-file``), ideally of the ``gateway`` role, which may pull
exactly the models granted to it. Start-up, each step fail-closed:

1. pull ``MODEL_REF`` through the client seam (``bastion.connect(url, token=..., ca=...).pull``: TLS, the
   server checks the token, its grants and its sealed rows, unwraps the DEK and streams the verified
   plaintext; the client checks every file's size and SHA-256) into a private (0700) temporary directory;
2. verify the model-signing signature of that directory here again (:func:`verify_directory`);
3. scan it (``bastion.scan.inspect_artifact``) and load it without pickle; the directory is then deleted,
   so the plaintext lives only in the process (and, in the k8s manifests, on a memory-backed ``/tmp``);
4. callers' bearer tokens are checked by the server (``GET /v1/whoami`` as the caller), so revocation
   applies within the gateway's ``token_cache_s``; the gateway's own permission check then needs
   ``model:infer`` on this model as before.

Layering: this module does not import the client (``client`` sits above ``serve``); the CLI hands in a
:class:`ModelSource` (a ``RemoteVault``) and a token checker.

Not (yet) available in this mode, each refused with a one-line ConfigError rather than silently dropped:
``[serve.jwt]``, ``[serve.api_watermark]``, ``[serve.theft]`` and ``[serve.drift]`` (their keys and state live
in the home), more than one ``--workers`` (run replicas instead), a self-signed certificate (give
``--tls-cert``/``--tls-key``). Request records go to the gateway's structured log, not to the home's audit
log; the server's audit log records the pull (``registry:pull`` by the gateway identity) and every token
check. Attestation-gated release (the server checking evidence before it releases the DEK to a gateway
identity) is not implemented: the server releases to any identity whose grants allow the pull.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bastion.access import Identity
from bastion.errors import AuthenticationFailed, BastionError, ConfigError, DependencyMissing, ServiceError


class ModelSource(Protocol):
    """What the gateway needs from a server: a verified pull (``RemoteVault`` provides it)."""

    def pull(self, ref: str, *, out: str | os.PathLike[str]) -> Any: ...


TokenChecker = Callable[[str], Identity]


def _refuse_home_features(config: Any) -> None:
    needs_home = [
        name
        for name, section in (
            ("[serve.jwt]", config.jwt),
            ("[serve.api_watermark]", config.api_watermark),
            ("[serve.theft]", getattr(config, "theft", None)),
            ("[serve.drift]", config.drift),
        )
        if section is not None and getattr(section, "enabled", False)
    ]
    if needs_home:
        raise ConfigError(
            f"{', '.join(needs_home)} need the project home's keys: not available with --server",
            hint="serve from the home (without --server), or disable them for this gateway",
        )


def check_remote_options(options: Any) -> None:
    """What ``--server`` mode refuses before contacting anything."""
    from bastion.serve.server import check_options

    check_options(options)
    if options.home is not None:
        raise ConfigError("--server and --home exclude each other: a gateway with --server has no home")
    if options.workers > 1:
        raise ConfigError(
            "--workers above 1 is not available with --server", hint="run more replicas of the gateway"
        )
    if not options.insecure and not (options.tls_cert and options.tls_key):
        raise ConfigError(
            "--server needs --tls-cert and --tls-key (there is no home to keep a self-signed certificate in)"
        )


def _load_directory(directory: Path, version: Any) -> Any:
    from bastion.models import TorchAdapter
    from bastion.models.recipes import load_model
    from bastion.serve.app import ServedModel
    from bastion.serve.text import is_text_model, load_text_model

    try:
        from bastion.scan import inspect_artifact
    except ImportError as exc:
        raise DependencyMissing(
            "the model scanner (bastion.scan) is not available: refusing to serve"
        ) from exc
    inspect_artifact(directory)
    name, number = str(version.name), str(version.version)
    digest, env = str(version.manifest_digest), getattr(version, "env", None)
    if is_text_model(directory):
        text = load_text_model(directory)
        return ServedModel(
            name=name, version=number, adapter=text, digest=digest, env=env, platform="bastion-text-sklearn"
        )
    loaded = load_model(directory)
    adapter = TorchAdapter(
        loaded.module, input_shape=(loaded.config.n_features,), n_classes=loaded.config.n_classes
    )
    return ServedModel(
        name=name, version=number, adapter=adapter, digest=digest, env=env, platform="bastion-mlp"
    )


def fetch_model(*, source: ModelSource, model_ref: str) -> Any:
    """Pull, verify, scan and load ``model_ref``; the plaintext directory is removed before returning."""
    from bastion.crypto.signing import verify_directory
    from bastion.vault.manifest import SIGNATURE_FILE, public_key_path

    scratch = Path(tempfile.mkdtemp(prefix="bastion-gateway-"))  # 0700, this process's own
    try:
        out = scratch / "model"
        version = source.pull(model_ref, out=out)
        if getattr(version, "kind", "model") != "model":
            raise ConfigError(f"{version.ref} is a {version.kind}, not a model")
        verify_directory(
            directory=out, signature_path=out / SIGNATURE_FILE, public_key_path=public_key_path(out)
        )
        (out / SIGNATURE_FILE).unlink()  # not part of the model the scanner and loader see
        return _load_directory(out, version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def server_token_checker(connect: Callable[[str], Any]) -> TokenChecker:
    """Check a caller's token by asking the server who it names (``connect(token)`` → a ``RemoteVault``)."""

    def check(token: str) -> Identity:
        try:
            with connect(token) as remote:
                identity: Identity = remote.identity
                return identity
        except ServiceError:
            raise  # the server is unreachable: not the caller's fault
        except BastionError as exc:
            raise AuthenticationFailed("invalid credentials") from exc

    return check


def build_remote_gateway(options: Any, *, source: ModelSource, verify_token: TokenChecker) -> Any:
    """A ready :class:`~bastion.serve.app.Gateway` for ``options.model_ref`` pulled from ``source``."""
    from bastion.serve.app import Gateway
    from bastion.serve.auth import Authenticator
    from bastion.serve.config import load_gateway_config

    cfg = load_gateway_config(section={}, config_file=options.config_file)
    if options.redis_url:
        from dataclasses import replace

        cfg = replace(cfg, redis_url=options.redis_url)
    _refuse_home_features(cfg)
    model = fetch_model(source=source, model_ref=options.model_ref)
    auth = Authenticator(verify_token=verify_token, jwt_verifier=None, cache_s=cfg.token_cache_s)
    return Gateway(model=model, config=cfg, authenticator=auth, audit=None)


def run_remote(
    options: Any,
    *,
    source: ModelSource,
    verify_token: TokenChecker,
    announce: Callable[[str], None] | None = None,
) -> None:
    """``bastion serve MODEL --server URL``: fetch, load, check TLS and bind, then serve until interrupted."""
    import uvicorn

    from bastion.serve.app import create_app
    from bastion.serve.connections import uvicorn_options
    from bastion.serve.server import _uvicorn_common, bind, tls_files

    check_remote_options(options)
    tls = tls_files(options)
    gateway = build_remote_gateway(options, source=source, verify_token=verify_token)
    try:
        config = uvicorn.Config(
            create_app(gateway),
            **_uvicorn_common(options, tls),
            **uvicorn_options(gateway.config.connections),
        )
        config.load()  # TLS context and protocol classes: fail here, before announcing
        sock = bind(options.host, options.port)
    except BaseException:
        gateway.close()
        raise
    if announce is not None:
        announce(f"{'https' if tls else 'http'}://{options.host}:{options.port}")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        gateway.close()


__all__ = [
    "ModelSource",
    "TokenChecker",
    "build_remote_gateway",
    "check_remote_options",
    "fetch_model",
    "run_remote",
    "server_token_checker",
]
