"""Start the gateway for a registry model: verify, release the key, scan, load, serve (TLS by default).

Start-up order, each step fail-closed:

1. open the vault as the caller (``$BASTION_TOKEN`` identity or the local owner) and read the version record;
2. the software attester signs claims about this process (package version, gateway-config digest, the
   version's manifest digest, a fresh nonce); the :class:`KeyReleasePolicy` verifies them; a denial is
   audit-logged and the gateway refuses to start — the data key is never unwrapped;
3. ``vault.materialize`` unwraps the key, decrypts, and checks the signature and every digest;
4. the scanner (``bastion.scan.inspect_artifact``) must accept the plaintext, which is then loaded without
   pickle (``bastion.models.recipes.load_model``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion import __version__
from bastion.config import PASSPHRASE_ENV, get_passphrase, home_path
from bastion.errors import ConfigError, DependencyMissing, PolicyViolation
from bastion.serve.app import Gateway, ServedModel, create_app
from bastion.serve.attestation import (
    SOFTWARE_FORMAT,
    Claims,
    KeyReleasePolicy,
    SoftwareEvidenceVerifier,
    load_or_create_software_attester,
    new_nonce,
)
from bastion.serve.auth import Authenticator, JwtVerifier
from bastion.serve.config import GatewayConfig, load_gateway_config
from bastion.serve.tls import check_pair, is_loopback, self_signed_certificate

SPEC_ENV = "BASTION_SERVE_SPEC"


@dataclass(frozen=True)
class ServeOptions:
    model_ref: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    redis_url: str | None = None
    config_file: str | None = None
    insecure: bool = False
    home: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def gateway_config(*, settings_section: Any, options: ServeOptions) -> GatewayConfig:
    cfg = load_gateway_config(section=settings_section, config_file=options.config_file)
    if options.redis_url:
        from dataclasses import replace

        cfg = replace(cfg, redis_url=options.redis_url)
    return cfg


def check_options(options: ServeOptions) -> None:
    if options.insecure and not is_loopback(options.host):
        raise ConfigError("--insecure (plain HTTP) is allowed only on a loopback address")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if options.insecure and options.tls_cert:
        raise ConfigError("--insecure and --tls-cert exclude each other")
    if options.workers < 1 or options.workers > 64:
        raise ConfigError("--workers must lie in 1..64")
    if not 0 < options.port < 65536:
        raise ConfigError("--port must lie in 1..65535")
    if options.workers > 1 and not options.redis_url:
        raise ConfigError(
            "--workers above 1 needs --redis: rate limits and the extraction monitor must be shared"
        )


def release_key(*, vault: Any, version: Any, config: GatewayConfig, passphrase: str) -> None:
    """Attest, evaluate the key-release policy, audit-log the decision; raise PolicyViolation on denial."""
    attester, trusted = load_or_create_software_attester(vault.settings.home / "serve", passphrase=passphrase)
    nonce = new_nonce()
    claims = Claims(
        package_version=__version__,
        config_digest=config.digest(),
        model_digest=version.manifest_digest,
        model_ref=version.ref,
        nonce=nonce,
        issued_at=time.time(),
    )
    evidence = attester.attest(claims)
    policy = KeyReleasePolicy(
        evidence_formats=tuple(config.key_release.evidence_formats),
        expected_model_digest=version.manifest_digest,
        expected_config_digest=config.digest(),
        allowed_package_versions=tuple(config.key_release.allowed_package_versions) or (__version__,),
        max_age_s=float(config.key_release.max_evidence_age_s),
    )
    decision = policy.evaluate(
        evidence=evidence, verifiers={SOFTWARE_FORMAT: SoftwareEvidenceVerifier(trusted)}, nonce=nonce
    )
    vault.audit.append(
        actor=vault.identity.name,
        action="serve:key-release",
        target=version.ref,
        outcome="ok" if decision.released else "denied",
        details={
            "reason": decision.reason,
            "format": evidence.format,
            "model_digest": version.manifest_digest,
        },
    )
    if not decision.released:
        raise PolicyViolation(f"key release denied for {version.ref}: {decision.reason}")


def _inspect(directory: Path) -> None:
    try:
        from bastion.scan import inspect_artifact
    except ImportError as exc:
        raise DependencyMissing(
            "the model scanner (bastion.scan) is not available: refusing to serve"
        ) from exc
    inspect_artifact(directory)


def load_served_model(*, vault: Any, version: Any) -> ServedModel:
    from bastion.models import TorchAdapter
    from bastion.models.recipes import load_model
    from bastion.serve.text import is_text_model, load_text_model

    with vault.materialize(version.ref) as directory:
        _inspect(directory)
        if is_text_model(directory):
            text = load_text_model(directory)
            return ServedModel(
                name=str(version.name),
                version=str(version.version),
                adapter=text,
                digest=version.manifest_digest,
                env=version.env,
                platform="bastion-text-sklearn",
            )
        loaded = load_model(directory)
    adapter = TorchAdapter(
        loaded.module,
        input_shape=(loaded.config.n_features,),
        n_classes=loaded.config.n_classes,
    )
    return ServedModel(
        name=str(version.name),
        version=str(version.version),
        adapter=adapter,
        digest=version.manifest_digest,
        env=version.env,
        platform="bastion-mlp",
    )


def build_gateway(options: ServeOptions, *, passphrase: str | None = None, namespace: str = "") -> Gateway:
    """Everything up to a ready :class:`Gateway` (no socket yet)."""
    from bastion.vault import open_vault

    secret = passphrase or get_passphrase()
    vault = open_vault(home=options.home, passphrase=secret)
    try:
        cfg = gateway_config(settings_section=vault.settings.section("serve"), options=options)
        version = vault.show(options.model_ref)
        if version.kind != "model":
            raise ConfigError(f"{version.ref} is a {version.kind}, not a model")
        release_key(vault=vault, version=version, config=cfg, passphrase=secret)
        model = load_served_model(vault=vault, version=version)
    except BaseException:
        vault.close()
        raise
    jwt_verifier = JwtVerifier(cfg.jwt) if cfg.jwt.enabled else None
    auth = Authenticator(
        verify_token=vault.authenticate, jwt_verifier=jwt_verifier, cache_s=cfg.token_cache_s
    )
    watermark = api_watermark(vault=vault, config=cfg)
    return Gateway(
        model=model,
        config=cfg,
        authenticator=auth,
        audit=vault.audit,
        namespace=namespace,
        watermark=watermark,
    )


def api_watermark(*, vault: Any, config: GatewayConfig) -> Any:
    """The ``ApiWatermark`` of ``[serve.api_watermark]`` (key: a key file or a home key id), or None."""
    wm = config.api_watermark
    if not wm.enabled:
        return None
    if not wm.key:
        raise ConfigError("[serve.api_watermark] is enabled but names no key (a key id or a key file)")
    from bastion.watermark import ApiWatermark
    from bastion.watermark.keys import resolve_key

    return ApiWatermark(resolve_key(wm.key, vault=vault), rate=wm.rate)


def tls_files(options: ServeOptions) -> tuple[str, str] | None:
    if options.insecure:
        return None
    if options.tls_cert and options.tls_key:
        cert, key = Path(options.tls_cert), Path(options.tls_key)
        check_pair(cert, key)
        return str(cert), str(key)
    cert, key = self_signed_certificate(home_path(options.home) / "serve", hosts=("localhost", "127.0.0.1"))
    return str(cert), str(key)


def worker_app() -> Any:
    """uvicorn factory for ``--workers N``: each worker verifies, releases the key and loads on its own."""
    spec = json.loads(os.environ[SPEC_ENV])
    return create_app(build_gateway(ServeOptions(**spec)))


def run(options: ServeOptions) -> None:
    """Verify, load and serve until interrupted."""
    import uvicorn

    check_options(options)
    tls = tls_files(options)
    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": False,
        "log_level": "warning",
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": 5,
    }
    if tls is not None:
        common.update(ssl_certfile=tls[0], ssl_keyfile=tls[1])
    if options.workers > 1:
        os.environ.setdefault(PASSPHRASE_ENV, get_passphrase())
        os.environ[SPEC_ENV] = options.to_json()
        uvicorn.run("bastion.serve.server:worker_app", factory=True, workers=options.workers, **common)
        return
    app = create_app(build_gateway(options))
    uvicorn.run(app, **common)


__all__ = [
    "ServeOptions",
    "api_watermark",
    "build_gateway",
    "check_options",
    "gateway_config",
    "load_served_model",
    "release_key",
    "run",
    "tls_files",
    "worker_app",
]
