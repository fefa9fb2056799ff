"""Witnesses of the audit log: signed tree heads kept outside the home, so that a rollback shows.

The log's own heads live in the database and ``audit-head.json`` inside the home: whoever holds the home and
the passphrase can rewrite entries, re-sign heads and replace that file. A witness keeps every head it is
shown somewhere the home's holder cannot rewrite, and ``log verify`` checks an RFC 6962 consistency proof
from the witness's heads to the log's current head (truncation, deletion or rewriting of anything a witness
has seen is an :class:`~bastion.errors.IntegrityError`, exit 1).

Two kinds, configured in ``bastion.toml`` (several at once)::

    [[log.witness]]
    kind = "file"                       # an append-only JSON-lines file on another path or mount
    path = "/srv/bastion-witness/heads.jsonl"

    [[log.witness]]
    kind = "http"                       # a `bastion witness serve` service (countersigns every head)
    url = "https://witness.internal:8443"
    key = "/etc/bastion/witness.pub.pem"  # its pinned Ed25519 countersigning key
    ca = "/etc/bastion/witness-ca.pem"    # TLS trust anchor (default: system store); http only on loopback

A file witness protects only as far as its storage does: put it where the home's owner cannot rewrite it
(another user's spool with ``chattr +a``, a WORM or append-only mount). An HTTP witness checks each head's
signature against the log key it pinned and its consistency with the last head it holds before it
countersigns, so even the passphrase holder cannot make it accept a rewritten history.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError, IntegrityError, ServiceError
from bastion.store.auditlog import ConsistencyProof, SignedTreeHead, canonical_json
from bastion.store.interface import Witness

COSIGN_STATEMENT = "bastion-witness-cosignature/v1"
MAX_LINE = 4096
logger = logging.getLogger(__name__)


def cosigned_data(head: SignedTreeHead) -> bytes:
    """What a witness countersigns: the whole signed head under a fixed statement."""
    return canonical_json({"statement": COSIGN_STATEMENT, "head": head.to_dict()})


MAX_WITNESS_FILE_BYTES = 1 << 30  # a signed head is ~300 bytes: millions of heads


class FileWitness:
    """An append-only JSON-lines file of signed heads (opened ``O_APPEND``; never rewritten)."""

    needs_proof = False  # it keeps every head; `log verify` checks each of them against the log

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"file:{self.path}"

    def heads(self) -> list[SignedTreeHead]:
        from bastion.files import read_regular_file

        try:  # never blocks on a FIFO; regular files only, bounded
            raw = read_regular_file(self.path, limit=MAX_WITNESS_FILE_BYTES, follow_symlinks=True)
        except FileNotFoundError:
            return []
        except IntegrityError as exc:
            raise ServiceError(f"witness {self.name}: cannot read ({exc})") from exc
        out: list[SignedTreeHead] = []
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(SignedTreeHead.from_dict(json.loads(line)))
            except (ValueError, IntegrityError) as exc:
                raise IntegrityError(f"witness {self.name}: line {n} is not a signed tree head") from exc
        return out

    def submit(self, head: SignedTreeHead, proof: ConsistencyProof | None) -> None:
        del proof  # the verifier checks the file's heads against the log; the file only keeps them
        held = self.heads()
        if held and held[-1].size >= head.size:
            return
        line = canonical_json(head.to_dict()) + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ServiceError(f"witness {self.name}: cannot append ({exc.strerror})") from exc


class HttpWitness:
    """A ``bastion witness`` service; its countersignature is checked against a pinned public key."""

    needs_proof = True  # it verifies the consistency proof before it countersigns

    def __init__(
        self,
        url: str,
        *,
        public_key_pem: str,
        ca: str | None = None,
        name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        from urllib.parse import urlsplit

        from bastion.crypto.signing import Ed25519Verifier

        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"witness url {url!r} must be https://HOST[:PORT]")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ConfigError(f"witness url {url!r}: plain http is allowed only on a loopback address")
        self.url = url.rstrip("/")
        self.name = name or self.url
        self._key = Ed25519Verifier.from_pem(public_key_pem)
        self._verify: str | bool = ca if ca else True
        self._timeout = timeout
        self._client: Any = None

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        import httpx

        try:
            if self._client is None:  # one TLS connection, kept alive, per process
                self._client = httpx.Client(verify=self._verify, timeout=self._timeout)
            resp = self._client.request(method, self.url + path, json=body)
        except httpx.HTTPError as exc:
            self.close()
            raise ServiceError(f"witness {self.name}: unreachable ({type(exc).__name__})") from exc
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if resp.status_code == 409:
            raise IntegrityError(f"witness {self.name} refused the head: {doc.get('detail', 'conflict')}")
        if resp.status_code != 200:
            raise ServiceError(
                f"witness {self.name}: HTTP {resp.status_code} {doc.get('detail', '')}".rstrip()
            )
        return doc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _cosigned(self, doc: Any) -> SignedTreeHead | None:
        if not isinstance(doc, dict) or doc.get("head") is None:
            return None
        head = SignedTreeHead.from_dict(doc["head"])
        try:
            self._key.verify(cosigned_data(head), bytes.fromhex(str(doc.get("cosignature", ""))))
        except (ValueError, IntegrityError) as exc:
            raise IntegrityError(f"witness {self.name}: the countersignature does not verify") from exc
        return head

    def heads(self) -> list[SignedTreeHead]:
        head = self._cosigned(self._request("GET", "/v1/head"))
        return [] if head is None else [head]

    def submit(self, head: SignedTreeHead, proof: ConsistencyProof | None) -> None:
        body = {
            "head": head.to_dict(),
            "consistency": None if proof is None else [p.hex() for p in proof.path],
            "from_size": None if proof is None else proof.old_size,
        }
        got = self._cosigned(self._request("POST", "/v1/heads", body))
        if got is None or got.size < head.size:
            raise ServiceError(f"witness {self.name}: did not countersign the head")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


WITNESS_KEYS = {
    "file": frozenset({"kind", "path", "name"}),
    "http": frozenset({"kind", "url", "key", "ca", "name"}),
}


def witnesses_from_config(entries: Any, *, home: Path) -> list[Witness]:
    """The ``[[log.witness]]`` tables of bastion.toml as witnesses (unknown kinds or keys raise)."""
    if entries is None:
        return []
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError("[log] witness must be an array of tables ([[log.witness]])")
    out: list[Witness] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"[[log.witness]] #{i + 1} must be a table")
        kind = entry.get("kind")
        if kind not in WITNESS_KEYS:
            raise ConfigError(f"[[log.witness]] #{i + 1}: kind must be 'file' or 'http'")
        unknown = sorted(set(entry) - WITNESS_KEYS[kind])
        if unknown:
            raise ConfigError(f"[[log.witness]] #{i + 1}: unknown key(s) {', '.join(unknown)}")
        name = entry.get("name")
        if kind == "file":
            if not entry.get("path"):
                raise ConfigError(f"[[log.witness]] #{i + 1}: a file witness needs path")
            path = Path(str(entry["path"])).expanduser().resolve()
            if path.is_relative_to(home.resolve()):
                raise ConfigError(
                    f"[[log.witness]] #{i + 1}: a witness file inside the home witnesses nothing"
                )
            out.append(FileWitness(path, name=name))
        else:
            if not entry.get("url") or not entry.get("key"):
                raise ConfigError(f"[[log.witness]] #{i + 1}: an http witness needs url and key")
            try:
                pem = Path(str(entry["key"])).expanduser().read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"[[log.witness]] #{i + 1}: cannot read the witness key") from exc
            ca = str(entry["ca"]) if entry.get("ca") else None
            out.append(HttpWitness(str(entry["url"]), public_key_pem=pem, ca=ca, name=name))
    return out


__all__ = [
    "COSIGN_STATEMENT",
    "FileWitness",
    "HttpWitness",
    "Witness",
    "cosigned_data",
    "witnesses_from_config",
]
