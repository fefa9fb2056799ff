"""A gateway's attested pull from a ``bastion server`` (``/v1/gateway/challenge`` then ``/v1/gateway/pull``).

``attest`` turns the server's challenge (nonce, the exact version and its manifest digest) into evidence
(:func:`bastion.serve.remote.gateway_evidence` signs claims with the gateway's attester key). The model then
streams as a pull does, and arrives the same way: staged privately inside ``out``, every file's size and
SHA-256 checked against the version's signed digests, ``OUT.pub.pem`` beside it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bastion.client import _decode as D
from bastion.client._http import STREAM_TIMEOUT, ResponseReader, raise_for
from bastion.client.remote import PULL_META, _check_pulled, _prepare_out_dir
from bastion.errors import IntegrityError, InvalidInput, ServiceError
from bastion.server.tarstream import CHUNK, extract_stream
from bastion.vault import ArtifactVersion, public_key_path

Attest = Callable[[Mapping[str, Any]], Mapping[str, str]]


def attested_pull(vault: Any, ref: str, *, out: str | os.PathLike[str], attest: Attest) -> ArtifactVersion:
    """Challenge, attest, and pull ``ref`` into ``out`` (PolicyViolation when the server denies release)."""
    t = getattr(vault, "_t", None)
    if t is None:
        raise ServiceError("not a remote vault")
    challenge = t.call("GET", "/gateway/challenge", params={"ref": str(ref)})
    if not isinstance(challenge, dict) or not isinstance(challenge.get("nonce"), str):
        raise ServiceError("the server sent a malformed challenge")
    body = {"nonce": challenge["nonce"], "evidence": dict(attest(challenge))}
    target = Path(out).absolute()
    created = _prepare_out_dir(target)
    stage = target / f".bastion-pull-{secrets.token_hex(8)}"
    try:
        os.mkdir(stage, 0o700)
        try:
            with (
                t._errors(),
                t._client.stream("POST", "/gateway/pull", json=body, timeout=STREAM_TIMEOUT) as resp,
            ):
                if not resp.is_success:
                    resp.read()
                    raise_for(resp)
                got = extract_stream(
                    ResponseReader(resp, CHUNK),
                    stage,
                    meta_names=PULL_META,
                    max_bytes=1 << 50,
                    max_files=1 << 20,
                )
            version = D.artifact_version(json.loads(got.meta["version.json"]))
            if version.ref != challenge.get("ref") or version.manifest_digest != challenge.get(
                "model_digest"
            ):
                raise IntegrityError(f"{version.ref}: the server released another version than it attested")
            _check_pulled(version, got.files)
            for entry in sorted(os.listdir(stage)):
                os.rename(stage / entry, target / entry)
            tmp = target.parent / f".{target.name}.pub-{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(got.meta["pub.pem"])
            os.replace(tmp, public_key_path(target))
        except OSError as exc:
            raise InvalidInput(f"cannot write the pulled files into {target} ({exc.strerror})") from exc
        except (ValueError, KeyError) as exc:
            raise IntegrityError("the server sent a malformed pull stream") from exc
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return version


def introspect(vault: Any, token: str) -> Any:
    """The identity a gateway caller's ``token`` names, asked with the gateway's own credential
    (AuthenticationFailed when it names none)."""
    t = getattr(vault, "_t", None)
    if t is None:
        raise ServiceError("not a remote vault")
    return D.identity(t.call("POST", "/gateway/introspect", json={"token": token}))


__all__ = ["attested_pull", "introspect"]
