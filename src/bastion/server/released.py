"""Which model versions the server released to which gateway identity, kept across restarts.

``POST /v1/gateway/audit`` accepts a gateway's request records only for a version released to that gateway
identity by attested release (:mod:`bastion.server.routers.gateway`). The set used to live in memory, so
after a restart every gateway's records were refused until it attested again. It is now also written to
``HOME/gateway-releases.json``, one entry per (identity id, NAME:VERSION), each sealed with the home's
row-sealing key (:class:`bastion.crypto.seal.RowSealer`: HMAC-SHA256 over the canonical entry, derived from
the log's signing key, which only the passphrase holder has). An entry is believed only when its seal checks:
one that a home writer added or edited (another identity, another version) is refused (logged, never a
release), and a deleted or rolled-back file only loses releases (those gateways' records are refused until
they attest again: fail closed). Without a sealer (a home opened without its signing key) nothing is
persisted and nothing is read back: the set stays in memory as before.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bastion.errors import IntegrityError
from bastion.files import atomic_write

RELEASES_FILE = "gateway-releases.json"
SEAL_KIND = "gateway-release"
MAX_BYTES = 16 << 20
logger = logging.getLogger(__name__)


class GatewayReleases:
    """The released set of one home: in memory, backed by the sealed file (re-read on a miss, so a release
    made by another server process or before a restart is found)."""

    def __init__(self, home: Path, sealer: Any) -> None:
        self.path = Path(home) / RELEASES_FILE
        self._sealer = sealer
        self._lock = threading.Lock()
        self._released: dict[str, set[str]] = {}
        self._stamp: tuple[int, int, int] | None = None

    @staticmethod
    def _state(identity_id: str, ref: str, at: int) -> dict[str, Any]:
        return {"identity": identity_id, "ref": ref, "at": at}

    def _read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return []
        if len(raw) > MAX_BYTES:
            raise IntegrityError(f"{self.path.name} is too large")
        try:
            items = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{self.path.name} is malformed") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise IntegrityError(f"{self.path.name} is malformed")
        return items

    def _believed(self, items: list[dict[str, Any]]) -> dict[str, set[str]]:
        """The entries whose seal checks (each other one logged and left out)."""
        out: dict[str, set[str]] = {}
        for item in items:
            try:
                ident, ref, at = str(item["identity"]), str(item["ref"]), int(item["at"])
                mac = bytes.fromhex(str(item["mac"]))
                self._sealer.check(
                    SEAL_KIND, f"{ident}\0{ref}", self._state(ident, ref, at), mac, what="a gateway release"
                )
            except (KeyError, TypeError, ValueError, IntegrityError) as exc:
                logger.error("%s: an entry is refused (%s)", self.path.name, exc)
                continue
            out.setdefault(ident, set()).add(ref)
        return out

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp is None or stamp == self._stamp:
            return
        try:
            loaded = self._believed(self._read())
        except IntegrityError as exc:
            logger.error("gateway releases not read back (%s): gateways attest again", exc)
            loaded = {}
        for ident, refs in loaded.items():
            self._released.setdefault(ident, set()).update(refs)
        self._stamp = stamp

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time across this home's server processes (read, add, write)."""
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, identity_id: str, ref: str, *, now: float | None = None) -> None:
        """Record a release (in memory, and sealed in the file when there is a sealer)."""
        with self._lock:
            self._released.setdefault(identity_id, set()).add(ref)
            if self._sealer is None:
                return
            at = int(time.time() if now is None else now)
            mac = self._sealer.seal(SEAL_KIND, f"{identity_id}\0{ref}", self._state(identity_id, ref, at))
            with self._exclusive():
                try:
                    items = self._read()
                except IntegrityError:
                    items = []  # unreadable: rewritten with what can be sealed now
                items = [i for i in items if (i.get("identity"), i.get("ref")) != (identity_id, ref)]
                items.append({**self._state(identity_id, ref, at), "mac": mac.hex()})
                atomic_write(self.path, json.dumps(items, sort_keys=True, indent=1).encode())

    def contains(self, identity_id: str, ref: str) -> bool:
        with self._lock:
            if ref in self._released.get(identity_id, ()):
                return True
            if self._sealer is None:
                return False
            self._reload()
            return ref in self._released.get(identity_id, ())


__all__ = ["RELEASES_FILE", "GatewayReleases"]
