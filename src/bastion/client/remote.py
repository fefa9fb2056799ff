"""``RemoteVault``: the local Vault's public methods, answered by a ``bastion server``.

Same arguments, same frozen dataclasses, same exceptions (the server's error name is mapped back to its
:mod:`bastion.errors` class). What needs the key ring or the database on this machine (``engine``, ``keys``,
``materialize`` …) is not here: touching it raises :class:`NotAvailableRemotely`, one line naming the command.
"""

from __future__ import annotations

import builtins
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.access import Identity
from bastion.access.control import Revocation, TokenInfo
from bastion.client import _decode as D
from bastion.client._http import ResponseReader, Transport
from bastion.client._staging import PULL_META, install_pulled, pull_staging
from bastion.crypto.interface import KekInfo
from bastion.errors import ConfigError, IntegrityError, InvalidInput, NotFound, ServiceError
from bastion.server.tarstream import (
    bytes_member,
    end_of_archive,
    extract_stream,
    file_member,
    listing_length,
    tree_listing,
)
from bastion.store.auditlog import (
    AuditEntry,
    ConsistencyProof,
    InclusionProof,
    LogVerification,
    SignedTreeHead,
)
from bastion.vault import (
    Annotation,
    ArtifactRef,
    ArtifactVersion,
    KeyRotation,
)

# Pull reads the stream in pieces below malloc's mmap threshold: buffers come from the heap (reused, warm)
# instead of fresh page-faulted mappings for every 1 MiB that tarfile's stream mode joins and slices
# (profiled: that join was a third of the client's time); 64 pieces in flight decouple TLS from the disk.
PULL_CHUNK = 64 << 10
PUSH_CHUNK = 1 << 20  # sent as is (the upload has a Content-Length, so h11 adds no framing copy)


class NotAvailableRemotely(ConfigError, AttributeError):
    """A command or attribute that needs the local key ring or database, used with ``BASTION_URL`` set."""


def _command() -> str:
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except ImportError:  # pragma: no cover - click comes with the CLI
        ctx = None
    return f"'{ctx.command_path}'" if ctx is not None else "this call"


class RemoteAccess:
    """``vault.access`` of a remote vault: identities and tokens, managed on the server."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def grant(
        self, *, name: str, role: str | None = None, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> Identity:
        body = {"name": name, "role": role, "models": list(models), "envs": list(envs)}
        return D.identity(self._t.call("POST", "/access/grant", json=body))

    def revoke_scopes(self, *, name: str, models: Sequence[str] = (), envs: Sequence[str] = ()) -> Revocation:
        body = {"name": name, "models": list(models), "envs": list(envs)}
        return D.revocation(self._t.call("POST", "/access/revoke", json=body))

    def revoke(self, *, name: str, models: Sequence[str] = (), envs: Sequence[str] = ()) -> Identity | None:
        return self.revoke_scopes(name=name, models=models, envs=envs).identity

    def list_identities(self) -> list[Identity]:
        return [D.identity(d) for d in self._t.call("GET", "/access/identities")]

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        body = {"name": name, "role": role, "models": list(models), "envs": list(envs)}
        got = self._t.call("POST", "/tokens", json=body)
        return D.identity(got["identity"]), str(got["token"])

    def revoke_token(self, token_id: str) -> None:
        if not token_id or "/" in token_id or len(token_id) > 200:
            raise NotFound(f"no active token with id {token_id!r}")
        self._t.call("POST", f"/tokens/{token_id}/revoke")

    def list_tokens(self) -> list[TokenInfo]:
        return [D.token_info(d) for d in self._t.call("GET", "/tokens")]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotAvailableRemotely(
            f"{_command()} needs the local identity store: not available with BASTION_URL"
        )


class RemoteVault:
    """A project's registry on a ``bastion server``, acting as the token's identity. Build with
    :func:`bastion.connect`."""

    remote = True

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.url = transport.url
        self.access = RemoteAccess(transport)
        self._identity: Identity | None = None

    # --- plumbing -------------------------------------------------------------------------------------------

    def __enter__(self) -> RemoteVault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotAvailableRemotely(
            f"{_command()} needs the local key ring or database ({name}): not available with BASTION_URL",
            hint="unset BASTION_URL to run it in local mode on the machine that holds the home",
        )

    @property
    def identity(self) -> Identity:
        """Who the token is (asked once)."""
        if self._identity is None:
            self._identity = D.identity(self._t.call("GET", "/whoami"))
        return self._identity

    def authenticate(self, token: str) -> Identity:
        raise NotAvailableRemotely("token checks happen on the server: not available with BASTION_URL")

    def create_token(
        self, *, name: str, role: str, models: Sequence[str] = (), envs: Sequence[str] = ()
    ) -> tuple[Identity, str]:
        return self.access.create_token(name=name, role=role, models=models, envs=envs)

    # --- registry -------------------------------------------------------------------------------------------

    def push(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        kind: str = "model",
        env: str | None = None,
        classification: str | None = None,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_unsafe: bool = False,
    ) -> ArtifactVersion:
        """Stream ``path`` (a file or a directory) to the server as a tar; it scans, signs and encrypts."""
        src = Path(path)
        try:
            st = os.lstat(src)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file or directory: {src}") from exc
        except OSError as exc:
            raise InvalidInput(f"cannot read {src} ({exc.strerror})") from exc
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInput(f"symbolic links are not pushed: {src}")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise InvalidInput(f"not a regular file or directory: {src}")
        opts = {
            "name": name,
            "kind": kind,
            "env": env,
            "classification": classification,
            "tags": dict(tags or {}),
            "metadata": None if metadata is None else dict(metadata),
            "allow_unsafe": allow_unsafe,
            "source": "dir" if stat.S_ISDIR(st.st_mode) else "file",
            "display": str(src),
        }
        try:
            preamble = json.dumps(opts, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidInput("metadata must be JSON-serialisable") from exc

        if stat.S_ISDIR(st.st_mode):
            listing = tree_listing("files", src)
        else:
            listing = [(f"files/{src.name}", src, st.st_size)]
        meta = list(bytes_member("push.json", preamble))
        length = sum(map(len, meta)) + listing_length(listing) + len(end_of_archive())

        def body() -> Iterator[bytes]:  # exactly ``length`` bytes, or a refusal (a file changed size)
            yield from meta
            for name, path, size in listing:
                yield from file_member(name, path, expect_size=size, chunk=PUSH_CHUNK)
            yield end_of_archive()

        return D.artifact_version(self._t.upload("/registry/push", body(), length=length))

    def pull(self, ref: str | ArtifactRef, *, out: str | os.PathLike[str]) -> ArtifactVersion:
        """Stream a verified version from the server into ``out`` (new or empty), as local pull does: staged
        in a private directory inside ``out``, each file's size and SHA-256 checked against the version's
        signed digests, moved into place only when everything arrived; ``OUT.pub.pem`` beside it."""
        ref = ArtifactRef.parse(ref)
        with pull_staging(out) as (target, stage):
            with self._t.download("/registry/pull", params={"ref": str(ref)}) as resp:
                reader = ResponseReader(resp, PULL_CHUNK, depth=64)
                try:
                    got = extract_stream(
                        reader,
                        stage,
                        meta_names=PULL_META,
                        max_bytes=1 << 50,
                        max_files=1 << 20,
                        chunk=PULL_CHUNK,
                    )
                except ServiceError as exc:  # the server aborts a stream that fails
                    raise IntegrityError(  # to verify mid-way; a broken stream is never kept either
                        f"{ref}: the pull stream broke off before it was complete and verified"
                    ) from exc
                finally:
                    reader.close()
            version = D.artifact_version(json.loads(got.meta["version.json"]))
            install_pulled(version, got.files, got.meta["pub.pem"], stage=stage, target=target)
        return version

    def verify(self, ref: str | ArtifactRef) -> ArtifactVersion:
        return D.artifact_version(self._t.call("POST", "/registry/verify", json={"ref": str(ref)}))

    def show(self, ref: str | ArtifactRef) -> ArtifactVersion:
        return D.artifact_version(self._t.call("GET", "/registry/show", params={"ref": str(ref)}))

    def list(self, kind: str | None = None) -> builtins.list[ArtifactVersion]:
        params = {} if kind is None else {"kind": kind}
        return [D.artifact_version(d) for d in self._t.call("GET", "/registry/versions", params=params)]

    def promote(self, ref: str | ArtifactRef, *, to: str) -> ArtifactVersion:
        """Promote on the server (which also runs the ``[policy.<to>]`` gate of its bastion.toml)."""
        return D.artifact_version(self._t.call("POST", "/registry/promote", json={"ref": str(ref), "to": to}))

    def annotate(self, ref: str | ArtifactRef, *, namespace: str, data: Mapping[str, Any]) -> Annotation:
        body = {"ref": str(ref), "namespace": namespace, "data": dict(data)}
        return D.annotation(self._t.call("POST", "/registry/annotate", json=body))

    def annotations(self, ref: str | ArtifactRef, *, namespace: str | None = None) -> tuple[Annotation, ...]:
        params = {"ref": str(ref)} | ({} if namespace is None else {"namespace": namespace})
        return tuple(D.annotation(d) for d in self._t.call("GET", "/registry/annotations", params=params))

    # --- keys -----------------------------------------------------------------------------------------------

    def rotate_keys(self, *, env: str) -> KeyRotation:
        return D.key_rotation(self._t.call("POST", "/keys/rotate", json={"env": env}))

    def retire_key(self, *, env: str, version: int) -> None:
        self._t.call("POST", "/keys/retire", json={"env": env, "version": version})

    def list_keys(self) -> builtins.list[KekInfo]:
        return [D.kek_info(d) for d in self._t.call("GET", "/keys")]

    # --- the audit log --------------------------------------------------------------------------------------

    def log_verify(self, *, trusted: SignedTreeHead | None = None) -> LogVerification:
        body = {"trusted": None if trusted is None else trusted.to_dict()}
        return D.log_verification(self._t.call("POST", "/log/verify", json=body))

    def log_head(self) -> SignedTreeHead:
        return D.tree_head(self._t.call("GET", "/log/head"))

    def log_prove(self, index: int) -> InclusionProof:
        proof = D.inclusion(self._t.call("GET", f"/log/prove/{int(index)}"))
        proof.verify()  # the Merkle path is checked here too, not only on the server
        return proof

    def log_consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        proof = D.consistency(
            self._t.call("GET", "/log/consistency", params={"old": int(old_size), "new": int(new_size)})
        )
        proof.verify()
        return proof

    def log_entries(self, *, start: int = 0, limit: int | None = None) -> builtins.list[AuditEntry]:
        params = {"start": start} | ({} if limit is None else {"limit": limit})
        return [D.audit_entry(d) for d in self._t.call("GET", "/log/entries", params=params)]

    def log_public_key_pem(self) -> str:
        return str(self._t.call("GET", "/log/key")["public_key_pem"])


__all__ = ["NotAvailableRemotely", "RemoteAccess", "RemoteVault"]
