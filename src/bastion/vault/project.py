"""Creating and opening a project home: ``init_project`` and ``open_vault``."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import tomli_w

from bastion.access import AccessControl, Identity
from bastion.access.control import token_id
from bastion.config import (
    CONFIG_FILE,
    ENVIRONMENTS,
    TOKEN_ENV,
    get_passphrase,
    home_path,
    load_settings,
    secure_home,
)
from bastion.crypto.interface import WrapHolder
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keys import init_key_provider, open_key_provider
from bastion.crypto.signing import SigningKeys
from bastion.errors import ConfigError, Conflict, InvalidInput, NotFound
from bastion.store.auditlog import AuditLog
from bastion.store.blobs import open_blob_store
from bastion.store.db import ensure_tables, open_engine
from bastion.store.witness import witnesses_from_config
from bastion.vault._private import clean_stale, write_private
from bastion.vault.interface import Inspector
from bastion.vault.registry import Vault

WITNESS_FILE = "audit-head.json"
MIN_PASSPHRASE = 12
logger = logging.getLogger(__name__)


def init_project(
    *,
    home: str | os.PathLike[str] | None = None,
    passphrase: str,
    database_url: str | None = None,
    default_env: str = "dev",
    kdf: KdfParams | None = None,
    inspectors: Sequence[Inspector] | None = None,
    wrap_holders: Sequence[WrapHolder] | None = None,
) -> Vault:
    """Create a project home: bastion.toml, key ring, signing keys, database, blob store, the owner (admin).

    ``kdf`` overrides the passphrase KDF parameters (tests pass ``KdfParams.unsafe_fast()``).
    """
    if not passphrase:
        raise InvalidInput("an empty passphrase is not allowed")
    if len(passphrase) < MIN_PASSPHRASE:
        logger.warning(
            "the passphrase is shorter than %d characters: anyone who copies the home can guess it faster",
            MIN_PASSPHRASE,
        )
    if default_env not in ENVIRONMENTS:
        raise InvalidInput(f"default_env must be one of {', '.join(ENVIRONMENTS)}")
    root = home_path(home)
    if (root / CONFIG_FILE).exists():
        raise Conflict(f"a bastion project already exists at {root}")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    secure_home(root)  # an existing home (say 0755) becomes 0700 before anything is written into it
    config: dict[str, dict[str, str]] = {
        "project": {"name": root.parent.name or "bastion", "default_env": default_env}
    }
    if database_url:
        config["database"] = {"url": database_url}
    tmp = root / (CONFIG_FILE + ".tmp")
    tmp.unlink(missing_ok=True)  # left by an init that failed earlier
    write_private(tmp, tomli_w.dumps(config).encode("utf-8"))
    settings = load_settings(root, must_exist=False)  # defaults; the file is renamed into place at the end
    settings = dataclasses.replace(
        settings, database_url=database_url or settings.database_url, default_env=default_env
    )
    keys = init_key_provider(settings, passphrase, kdf=kdf)
    signer = SigningKeys.create(root, passphrase, kdf=kdf)
    engine = open_engine(settings.database_url)
    ensure_tables(engine)
    settings.blob_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    audit = AuditLog(engine, signer, witness_path=root / WITNESS_FILE)
    owner = AccessControl(engine, audit).create_owner()
    os.replace(tmp, root / CONFIG_FILE)  # the home exists only once everything above succeeded
    secure_home(root)
    settings = load_settings(root)
    audit.append(actor=owner.name, action="project:init", target=str(root), outcome="ok", details=None)
    return Vault(
        settings=settings,
        engine=engine,
        keys=keys,
        blobs=open_blob_store(settings),
        audit=audit,
        access=AccessControl(engine, audit, actor=owner),
        identity=owner,
        signer=signer,
        inspectors=inspectors,
        wrap_holders=wrap_holders,
    )


def open_vault(
    *,
    home: str | os.PathLike[str] | None = None,
    passphrase: str | None = None,
    token: str | None = None,
    inspectors: Sequence[Inspector] | None = None,
    wrap_holders: Sequence[WrapHolder] | None = None,
) -> Vault:
    """Open a project's vault as the identity of ``token`` / ``$BASTION_TOKEN``, else the local owner."""
    settings = load_settings(home)
    secure_home(settings.home)
    clean_stale(
        settings.home
    )  # temporaries (plaintext included) of a command that was killed: said on stderr
    if passphrase is None:
        passphrase = get_passphrase()
    keys = open_key_provider(settings, passphrase)
    signer = SigningKeys.open(settings.home, passphrase)
    engine = open_engine(settings.database_url)
    ensure_tables(engine)
    witnesses = witnesses_from_config(settings.section("log").get("witness"), home=settings.home)
    audit = AuditLog(engine, signer, witness_path=settings.home / WITNESS_FILE, witnesses=witnesses)
    control = AccessControl(engine, audit)
    token = caller_token(token)
    identity: Identity
    if token:
        identity = control.authenticate(token)
    else:
        try:
            identity = control.local_owner()  # the passphrase holder is the owner (local mode)
        except NotFound as exc:
            raise ConfigError(f"the project at {settings.home} has no owner identity") from exc
    return Vault(
        settings=settings,
        engine=engine,
        keys=keys,
        blobs=open_blob_store(settings),
        audit=audit,
        access=AccessControl(engine, audit, actor=identity),
        identity=identity,
        signer=signer,
        inspectors=inspectors,
        wrap_holders=wrap_holders,
    )


def caller_token(token: str | None = None) -> str | None:
    """The token to act with: ``token``, else ``$BASTION_TOKEN``; None only when neither is set at all.

    Local mode treats the passphrase holder as the owner, but a token that is *set* and empty, blank or not
    shaped like a bastion token is a mistake, never a reason to fall back to the owner (ConfigError, exit 2).
    """
    source = "token"
    if token is None:
        if TOKEN_ENV not in os.environ:
            return None
        token, source = os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    if not token.strip():
        raise ConfigError(f"{source} is set but empty: unset it to act as the local owner, or give a token")
    if token_id(token) is None:
        raise ConfigError(f"{source} is not a bastion API token (bst_<id>.<secret>)")
    return token


def home_exists(home: str | os.PathLike[str] | None = None) -> bool:
    return (Path(home_path(home)) / CONFIG_FILE).is_file()


__all__ = ["WITNESS_FILE", "caller_token", "home_exists", "init_project", "open_vault"]
