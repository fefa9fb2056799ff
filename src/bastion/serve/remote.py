"""A gateway whose model comes from a ``bastion server`` (``bastion serve MODEL --server URL``), not a home.

Issue 11 item 6: the gateway process holds no passphrase, no key ring and no database. Its only credential
is a workload token (``BASTION_TOKEN`` or ``--token-file``), ideally of the ``gateway`` role, which may pull
exactly the models granted to it. Start-up, each step fail-closed:

1. pull ``MODEL_REF`` by attested release (``bastion.client.gateway.attested_pull``: TLS; the server checks
   the token, its grants and sealed rows, then the gateway's evidence against the model's approved gateway
   policy, unwraps the DEK and streams the verified plaintext; the client checks every file's size and
   SHA-256 and that the version is the one it attested) into a private (0700) temporary directory;
2. verify the model-signing signature of that directory here again (:func:`verify_directory`);
3. scan it (``bastion.scan.inspect_artifact``) and load it without pickle; the directory is then deleted,
   so the plaintext lives only in the process (and, in the k8s manifests, on a memory-backed ``/tmp``);
4. callers' bearer tokens are checked by the server (``POST /v1/gateway/introspect`` with the gateway's own
   credential; failures are not written to the server's log one by one), so revocation applies within the
   gateway's ``token_cache_s``; the gateway's own permission check then needs ``model:infer`` on this model.

Layering: this module does not import the client (``client`` sits above ``serve``); the CLI hands in a
:class:`ModelSource` (an adapter over ``bastion.client.gateway``) and a token checker.

Not (yet) available in this mode, each refused with a one-line ConfigError rather than silently dropped:
``[serve.jwt]``, ``[serve.api_watermark]``, ``[serve.theft]`` and ``[serve.drift]`` (their keys and state live
in the home), more than one ``--workers`` (run replicas instead), a self-signed certificate (give
``--tls-cert``/``--tls-key``). Request records (batched) and security events go to the server's audit log
through ``POST /v1/gateway/audit`` (the CLI hands in ``bastion.client.gateway.RemoteAuditSink``), written
there under the gateway identity, for the released model only; the server's log also records the release,
the pull by the gateway identity and every token check.
``bastion respond``'s blocks, throttles and quarantines apply here too: the CLI hands in a
:class:`~bastion.respond.gate.RemoteResponseGate` that fetches the server's signed state every 2 s,
verifies it with a pinned key and refuses every request while it cannot (issue 17 M2).

Attested release: a ``gateway``-role token alone gets nothing (the server refuses its plain pulls). With
``--attester-key`` (an Ed25519 private key in PEM, mounted from its own Secret) the gateway answers the
server's challenge with evidence (:func:`gateway_evidence`: package version, the digest of the configuration
it will serve with, the exact model digest, the nonce), and the server releases the model only when that
passes the model's gateway policy, approved on the server's home with ``bastion serve NAME --approve
--gateway-attester PUB.pem`` (:func:`approve_remote_gateway`, the policy entry ``gateway:NAME``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bastion.access import Identity
from bastion.errors import AuthenticationFailed, BastionError, ConfigError, DependencyMissing, ServiceError


class ModelSource(Protocol):
    """What the gateway needs from a server: an attested pull (the CLI adapts ``bastion.client.gateway``)."""

    def attested_pull(
        self,
        ref: str,
        *,
        out: str | os.PathLike[str],
        attest: Callable[[Mapping[str, Any]], Mapping[str, str]],
    ) -> Any: ...


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
        name=name,
        version=number,
        adapter=adapter,
        digest=digest,
        env=env,
        platform="bastion-mlp",
        preprocessing=loaded.preprocessing,
    )


def remote_gateway_config(options: Any) -> Any:
    """The configuration a ``--server`` gateway runs with (no home section: its ``--config`` file only)."""
    from bastion.serve.config import load_gateway_config

    cfg = load_gateway_config(section={}, config_file=options.config_file)
    if options.redis_url:
        from dataclasses import replace

        cfg = replace(cfg, redis_url=options.redis_url)
    return cfg


def load_attester_key(path: str | os.PathLike[str]) -> Any:
    """The gateway's Ed25519 attester key (PEM, PKCS#8, unencrypted: it comes from a Secret)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from bastion.files import read_regular_file

    try:
        key = load_pem_private_key(read_regular_file(Path(path), limit=64 << 10), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted Ed25519 private key in PEM") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the attester key must be Ed25519")
    return key


def gateway_evidence(
    *, attester_key: Any, challenge: Mapping[str, Any], config_digest: str
) -> dict[str, str]:
    """Sign this process's claims for the server's ``challenge`` (the ``bastion-software-v1`` format)."""
    import base64
    import time

    from bastion import __version__
    from bastion.serve.attestation import Claims, SoftwareAttester

    try:
        claims = Claims(
            package_version=__version__,
            config_digest=config_digest,
            model_digest=str(challenge["model_digest"]),
            model_ref=str(challenge["ref"]),
            nonce=str(challenge["nonce"]),
            issued_at=time.time(),
        )
    except KeyError as exc:
        raise ServiceError("the server sent a malformed challenge") from exc
    evidence = SoftwareAttester(attester_key).attest(claims)
    return {
        "format": evidence.format,
        "payload": base64.b64encode(evidence.payload).decode("ascii"),
        "signature": base64.b64encode(evidence.signature).decode("ascii"),
    }


def gateway_policy_key(name: str, manifest_digest: str) -> str:
    """The release-policy entry of one approved version: ``gateway:NAME@DIGEST``. An approval releases
    exactly the version approved (its manifest digest), never a later version of the same name."""
    return f"gateway:{name}@{manifest_digest}"


def approve_remote_gateway(*, vault: Any, options: Any, attester_public_pem: bytes) -> Any:
    """``bastion serve NAME --approve --gateway-attester PUB.pem`` (admin, on the server's home): trust this
    attester key for ``NAME`` with the configuration ``options`` describes; signed with the home's key."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion import __version__
    from bastion.access import allowed
    from bastion.errors import AccessDenied
    from bastion.serve.attestation import (
        ModelReleasePolicy,
        ReleasePolicyDocument,
        load_release_policy,
        save_release_policy,
    )

    if not allowed(vault.identity, "serve:admin"):
        raise AccessDenied(f"{vault.identity.name} ({vault.identity.role}) may not approve a gateway")
    try:
        public = serialization.load_pem_public_key(attester_public_pem)
    except ValueError as exc:
        raise ConfigError("--gateway-attester: not a PEM public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError("--gateway-attester: the attester key must be Ed25519")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    version = vault.show(options.model_ref)
    if version.kind != "model":
        raise ConfigError(f"{version.ref} is a {version.kind}, not a model")
    cfg = remote_gateway_config(options)
    _refuse_home_features(cfg)
    digest = cfg.digest()
    directory = vault.settings.home / "serve"
    document = load_release_policy(directory, signer=vault.signer)
    key = gateway_policy_key(version.name, version.manifest_digest)  # this exact version only
    before = document.models.get(key)
    keep = before.attesters if before is not None and before.config_digest == digest else ()
    entry = ModelReleasePolicy(
        attesters=tuple(dict.fromkeys((*keep, raw))),
        config_digest=digest,
        package_versions=tuple(cfg.key_release.allowed_package_versions) or (__version__,),
        approved_by=vault.identity.name,
        approved_at=time.time(),
    )
    updated = ReleasePolicyDocument(models={**document.models, key: entry})
    save_release_policy(directory, updated, signer=vault.signer)
    vault.audit.append(
        actor=vault.identity.name,
        action="serve:approve-release",
        target=str(version.name),
        outcome="ok",
        details={
            "gateway": True,
            "config_digest": digest,
            "package_versions": list(entry.package_versions),
            "attesters": list(entry.attesters),
            "policy_digest": updated.digest(),
        },
    )
    return entry


def fetch_model(*, source: ModelSource, model_ref: str, attester_key: Any, config_digest: str) -> Any:
    """Attested pull, verify, scan, load ``model_ref``; the plaintext directory is gone before it returns."""
    from bastion.crypto.signing import verify_directory
    from bastion.vault.manifest import SIGNATURE_FILE, public_key_path

    scratch = Path(tempfile.mkdtemp(prefix="bastion-gateway-"))  # 0700, this process's own
    try:
        out = scratch / "model"
        version = source.attested_pull(
            model_ref,
            out=out,
            attest=lambda challenge: gateway_evidence(
                attester_key=attester_key, challenge=challenge, config_digest=config_digest
            ),
        )
        if getattr(version, "kind", "model") != "model":
            raise ConfigError(f"{version.ref} is a {version.kind}, not a model")
        verify_directory(
            directory=out, signature_path=out / SIGNATURE_FILE, public_key_path=public_key_path(out)
        )
        (out / SIGNATURE_FILE).unlink()  # not part of the model the scanner and loader see
        return _load_directory(out, version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def server_token_checker(lookup: Callable[[str], Identity]) -> TokenChecker:
    """Check a caller's token by asking the server who it names (``lookup``: the gateway's introspection call,
    ``bastion.client.gateway.introspect``); any refusal is an opaque AuthenticationFailed."""

    def check(token: str) -> Identity:
        try:
            return lookup(token)
        except ServiceError:
            raise  # the server is unreachable: not the caller's fault
        except BastionError as exc:
            raise AuthenticationFailed("invalid credentials") from exc

    return check


def build_remote_gateway(
    options: Any,
    *,
    source: ModelSource,
    verify_token: TokenChecker,
    attester_key: Any,
    response_gate: Any = None,
    audit: Any = None,
) -> Any:
    """A ready :class:`~bastion.serve.app.Gateway` for ``options.model_ref``, released by ``source``;
    ``response_gate``: the server's signed response state (``bastion.respond.gate.RemoteResponseGate``);
    ``audit``: where request records go (``bastion.client.gateway.RemoteAuditSink``: the server's log)."""
    from bastion.serve.app import Gateway
    from bastion.serve.auth import Authenticator

    cfg = remote_gateway_config(options)
    _refuse_home_features(cfg)
    model = fetch_model(
        source=source, model_ref=options.model_ref, attester_key=attester_key, config_digest=cfg.digest()
    )
    auth = Authenticator(verify_token=verify_token, jwt_verifier=None, cache_s=cfg.token_cache_s)
    return Gateway(model=model, config=cfg, authenticator=auth, audit=audit, response_gate=response_gate)


def run_remote(
    options: Any,
    *,
    source: ModelSource,
    verify_token: TokenChecker,
    attester_key: Any,
    announce: Callable[[str], None] | None = None,
    response_gate: Any = None,
    audit: Any = None,
) -> None:
    """``bastion serve MODEL --server URL``: fetch, load, check TLS and bind, then serve until interrupted."""
    from bastion.serve.server import serve_gateway, tls_files

    check_remote_options(options)
    tls = tls_files(options)
    gateway = build_remote_gateway(
        options,
        source=source,
        verify_token=verify_token,
        attester_key=attester_key,
        response_gate=response_gate,
        audit=audit,
    )
    serve_gateway(gateway, options, tls, announce=announce)


__all__ = [
    "ModelSource",
    "TokenChecker",
    "approve_remote_gateway",
    "build_remote_gateway",
    "check_remote_options",
    "fetch_model",
    "gateway_evidence",
    "load_attester_key",
    "remote_gateway_config",
    "run_remote",
    "server_token_checker",
]
