"""Start the gateway for a registry model: verify, release the key, scan, load, serve (TLS by default).

Start-up order, each step fail-closed:

1. open the vault as the caller (``$BASTION_TOKEN`` identity or the local owner) and read the version record;
2. the software attester (its key sealed under the key ring) signs claims about this process (package
   version, gateway-config digest, the version's manifest digest, a fresh nonce); the
   :class:`KeyReleasePolicy` verifies them against the *approved* policy of the model — trusted attester keys,
   config digest and package versions from the signed release policy that ``bastion serve MODEL --approve``
   wrote (:func:`approve_release`), not from the running configuration. The decision, the released config
   digest and the policy digest are audit-logged; a denial refuses to start — the data key is never unwrapped;
3. ``vault.materialize`` unwraps the key, decrypts, and checks the signature and every digest;
4. the scanner (``bastion.scan.inspect_artifact``) must accept the plaintext, which is then loaded without
   pickle (``bastion.models.recipes.load_model``);
5. the TLS files and the listening socket are checked and bound — only then does :func:`run` announce the
   address (a port in use is a :class:`~bastion.errors.ServiceError`, exit 2).

``--workers N`` hands the passphrase to the workers inside uvicorn's spawn pickle (:mod:`._workers`), never
through the environment.

Key release lives in :mod:`._release`, binding and the one-process server in :mod:`._listen`; both are
re-exported here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.config import PASSPHRASE_ENV, get_passphrase
from bastion.errors import ConfigError, DependencyMissing
from bastion.serve._listen import _check_tls, _uvicorn_common, bind, serve_gateway, tls_files
from bastion.serve._release import approve_release, release_key
from bastion.serve.app import Gateway, ServedModel, create_app
from bastion.serve.attestation import ModelReleasePolicy
from bastion.serve.auth import Authenticator, JwtVerifier
from bastion.serve.config import GatewayConfig, load_gateway_config
from bastion.serve.tls import check_pair, is_loopback
from bastion.serve.trust import TrustMaterial, load_trust


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
    if options.tls_cert and options.tls_key:
        check_pair(Path(options.tls_cert), Path(options.tls_key))
    if options.workers < 1 or options.workers > 64:
        raise ConfigError("--workers must lie in 1..64")
    if not 0 < options.port < 65536:
        raise ConfigError("--port must lie in 1..65535")
    if options.workers > 1 and not options.redis_url:
        raise ConfigError(
            "--workers above 1 needs --redis: rate limits and the extraction monitor must be shared"
        )


def token_verifier(vault: Any) -> Callable[[str], Any]:
    """The gateway's API-token check: the vault's identity store, without one audit entry per failure."""
    from bastion.access import AccessControl

    return AccessControl(
        vault.engine,
        _GatewayAuthAudit(vault.audit),  # type: ignore[arg-type]
        sealer=vault.access.sealer,  # tokens' authorization rows are checked against their seals
    ).authenticate


class _GatewayAuthAudit:
    """The audit log as the gateway's token check sees it: failed token checks are not appended one by one
    (each request, failures included, is recorded by the gateway's batched writer: counted and sampled), so
    a flood of random tokens cannot grow the log; every other entry goes through unchanged."""

    def __init__(self, audit: Any) -> None:
        self._audit = audit

    def append(self, *, actor: str, action: str, target: str, outcome: str, details: Any = None) -> Any:
        if action == "auth" and outcome == "denied":
            return None
        return self._audit.append(actor=actor, action=action, target=target, outcome=outcome, details=details)


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
        preprocessing=loaded.preprocessing,
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
        trust = load_trust(vault=vault, config=cfg)  # read once: fingerprinted here, used below
        release_key(vault=vault, version=version, config=cfg, files=trust.fingerprints)
        model = load_served_model(vault=vault, version=version)
        jwt_verifier = JwtVerifier(cfg.jwt, pem=trust.jwt_pem) if cfg.jwt.enabled else None
    except BaseException:
        vault.close()
        raise
    auth = Authenticator(
        verify_token=token_verifier(vault), jwt_verifier=jwt_verifier, cache_s=cfg.token_cache_s
    )
    watermark = api_watermark(vault=vault, config=cfg, trust=trust)
    theft, monitor_key = theft_defence(vault=vault, config=cfg, model=model, trust=trust)
    drift = drift_monitor(vault=vault, config=cfg, model=model, metadata=version.metadata)
    from bastion.respond.gate import ResponseGate  # the signed block/throttle state `bastion respond` writes

    return Gateway(
        model=model,
        config=cfg,
        authenticator=auth,
        audit=vault.audit,
        namespace=namespace,
        watermark=watermark,
        theft=theft,
        monitor_key=monitor_key,
        drift=drift,
        response_gate=ResponseGate.for_vault(vault),
    )


def drift_monitor(*, vault: Any, config: GatewayConfig, model: ServedModel, metadata: Any) -> Any:
    """The ``DriftMonitor`` of ``[serve.drift]`` (or None); its state file lives under the home."""
    if not config.drift.enabled:
        return None
    from bastion.serve.drift_setup import build_monitor

    if model.platform != "bastion-mlp":
        raise ConfigError("[serve.drift] monitors numeric models only")
    return build_monitor(
        settings=config.drift,
        adapter=model.adapter,
        metadata=metadata or {},
        home=vault.settings.home,
        model=model.name,
        version=model.version,
        preprocessing=model.preprocessing,
    )


def approve_gateway(options: ServeOptions, *, passphrase: str | None = None) -> ModelReleasePolicy:
    """``bastion serve MODEL --approve``: approve the configuration ``options`` would serve with."""
    from bastion.vault import open_vault

    vault = open_vault(home=options.home, passphrase=passphrase or get_passphrase())
    try:
        cfg = gateway_config(settings_section=vault.settings.section("serve"), options=options)
        version = vault.show(options.model_ref)
        if version.kind != "model":
            raise ConfigError(f"{version.ref} is a {version.kind}, not a model")
        trust = load_trust(vault=vault, config=cfg)
        return approve_release(
            vault=vault, model_name=str(version.name), config=cfg, files=trust.fingerprints
        )
    finally:
        vault.close()


def api_watermark(*, vault: Any, config: GatewayConfig, trust: TrustMaterial | None = None) -> Any:
    """The ``ApiWatermark`` of ``[serve.api_watermark]`` (key: a key file or a home key id), or None."""
    wm = config.api_watermark
    if not wm.enabled:
        return None
    if not wm.key:
        raise ConfigError("[serve.api_watermark] is enabled but names no key (a key id or a key file)")
    from bastion.watermark import ApiWatermark
    from bastion.watermark.keys import resolve_key

    key = trust.watermark_key if trust is not None else None
    return ApiWatermark(key or resolve_key(wm.key, vault=vault), rate=wm.rate)


def theft_defence(
    *, vault: Any, config: GatewayConfig, model: ServedModel, trust: TrustMaterial | None = None
) -> tuple[Any, bytes | None]:
    """The ``TheftDefence`` of ``[serve.theft]`` (or None) and the PRADA monitor's key (an HKDF sub-key of
    the theft or API-watermark key; None: a fresh random one per process)."""

    tc = config.theft
    trust = trust or load_trust(vault=vault, config=config)
    key = trust.theft_key
    monitor_key = key.derive("bastion-monitor-v1") if key is not None else None
    if not tc.enabled or key is None:
        return None, monitor_key
    from bastion.serve.theft import TheftPolicy, build_defence

    x, y = trust.reference_arrays()
    x = x.reshape(len(x), -1)
    if model.preprocessing is not None:  # the reference holds raw rows, as requests do
        x = model.preprocessing.apply(x)
    guard = config.input_guard
    lo, hi = guard.min_value, guard.max_value
    policy = TheftPolicy(
        daily_rows=tc.daily_rows, block_score=tc.block_score or None, address_rows=tc.address_rows or None
    )
    store = None
    if config.redis_url:  # workers and replicas judge a consumer's combined stream
        from bastion.serve.theft_state import RedisTheftStore

        store = RedisTheftStore(url=config.redis_url, prefix=f"bastion-theft:{model.name}:{model.version}")
    defence = build_defence(
        key=key,
        reference_x=x,
        reference_y=y,
        n_classes=int(model.adapter.n_classes),
        policy=policy,
        center=(lo + hi) / 2.0 if lo is not None and hi is not None else 0.0,
        store=store,
        predict=_flat_predict(model.adapter),  # the informative-step test (bastion.serve._theft_steps)
        watermark_eps=tc.watermark_eps,
        deployment_eps=tc.deployment_eps,
    )
    return defence, monitor_key


def _flat_predict(adapter: Any) -> Any:
    """The served model's probabilities for flattened rows (what the theft defence sees), as the gateway
    answers them (before the API watermark)."""
    import numpy as np

    shape = tuple(adapter.input_shape)

    def predict(rows: Any) -> Any:
        x = np.asarray(rows, dtype=np.float32).reshape((len(rows), *shape))
        return np.asarray(adapter.predict_proba(x), dtype=np.float64)

    return predict


def worker_app() -> Any:
    """uvicorn factory for ``--workers N``: each worker verifies, releases the key and loads on its own, with
    the passphrase and options its parent handed over in the spawn pickle (see :mod:`._workers`)."""
    from bastion.serve._workers import take
    from bastion.serve.connections import configure_worker

    secret, spec = take()
    gateway = build_gateway(ServeOptions(**json.loads(spec)), passphrase=secret)
    configure_worker(gateway.config.connections)
    return create_app(gateway)


def run(options: ServeOptions, *, announce: Callable[[str], None] | None = None) -> None:
    """Verify, load, check TLS and bind, then announce and serve until interrupted."""
    import uvicorn

    from bastion.serve.connections import WORKER_PROTOCOL, proxy_options

    check_options(options)
    tls = tls_files(options)
    common = _uvicorn_common(options, tls)
    scheme = "https" if tls is not None else "http"
    if options.workers > 1:
        from bastion.serve._workers import WorkerConfig

        secret = get_passphrase()
        os.environ.pop(PASSPHRASE_ENV, None)  # workers inherit the environment: keep the secret out of it
        probe = build_gateway(options, passphrase=secret)  # validate everything before announcing
        keep_alive = probe.config.connections.keep_alive_s
        proxies = proxy_options(probe.config.connections)
        probe.close()
        config = WorkerConfig(
            "bastion.serve.server:worker_app",
            factory=True,
            workers=options.workers,
            http=WORKER_PROTOCOL,
            timeout_keep_alive=keep_alive,
            secret=secret,
            spec=options.to_json(),
            **common,
            **proxies,
        )
        _check_tls(config)
        sock = bind(options.host, options.port)
        if announce is not None:
            announce(f"{scheme}://{options.host}:{options.port}")
        from uvicorn.supervisors import Multiprocess

        server = uvicorn.Server(config=config)
        try:
            Multiprocess(config, target=server.run, sockets=[sock]).run()
        finally:
            sock.close()
        return
    serve_gateway(build_gateway(options), options, tls, announce=announce)


__all__ = [
    "ServeOptions",
    "api_watermark",
    "approve_gateway",
    "approve_release",
    "bind",
    "build_gateway",
    "check_options",
    "gateway_config",
    "load_served_model",
    "release_key",
    "run",
    "serve_gateway",
    "theft_defence",
    "tls_files",
    "token_verifier",
    "worker_app",
]
