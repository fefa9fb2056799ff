"""Response state for the gateway: blocked/throttled clients and identities, quarantined models, guard mode.

One JSON document at ``HOME/respond/state.json``, preceded on its first line by an Ed25519 signature
(base64) over the JSON bytes, made with the home's tree-head key (the key that signs the audit log's heads),
so whoever can write the home's files but not sign with its key cannot unblock a client or lift a quarantine:
:func:`load_verified` checks the signature over exactly the bytes it parses (read once) and raises
``IntegrityError`` otherwise.
A gateway reads it with the public key only (:func:`load_verified`), and so does the vault before a pull (a
quarantined model is not pulled): that is why it lives in ``store`` (below both; ``bastion.respond.state``
re-exports it). The document also records the finding keys already handled, so a restarted
``respond --watch`` does not act twice.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bastion.errors import IntegrityError
from bastion.files import atomic_write

STATE_DIR = "respond"
STATE_FILE = "state.json"
FORMAT = "bastion-response-state/v1"
SECTIONS: tuple[str, ...] = (
    "blocked_clients",
    "throttled_clients",
    "blocked_identities",
    "quarantined_models",
)


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...

    def verify(self, data: bytes, signature: bytes) -> None: ...


@dataclass(frozen=True)
class ResponseState:
    """Entries map a client / identity / ``model:version`` to why (finding key) and when."""

    blocked_clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    throttled_clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    blocked_identities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    quarantined_models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    guard_mode: str | None = None
    handled: tuple[str, ...] = ()
    serial: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "serial": self.serial,
            "guard_mode": self.guard_mode,
            "handled": list(self.handled),
            **{s: {k: dict(v) for k, v in getattr(self, s).items()} for s in SECTIONS},
        }

    def with_entry(self, section: str, key: str, why: Mapping[str, Any] | None) -> ResponseState:
        """A copy with ``key`` added to (``why`` given) or removed from (``why=None``) ``section``."""
        entries = dict(getattr(self, section))
        if why is None:
            entries.pop(key, None)
        else:
            entries[key] = dict(why)
        return replace(self, **{section: entries})  # type: ignore[arg-type]

    def is_blocked(self, *, client: str = "-", identity: str = "-", model: str = "-") -> bool:
        return (
            client in self.blocked_clients
            or identity in self.blocked_identities
            or model in self.quarantined_models
            or model.split(":", 1)[0] in self.quarantined_models
        )


def state_path(home: Path) -> Path:
    return home / STATE_DIR / STATE_FILE


def _parse(data: bytes) -> ResponseState:
    try:
        obj = json.loads(data)
        if obj.get("format") != FORMAT:
            raise ValueError("format")
        return ResponseState(
            **{s: {str(k): dict(v) for k, v in obj[s].items()} for s in SECTIONS},
            guard_mode=obj.get("guard_mode"),
            handled=tuple(str(h) for h in obj.get("handled", [])),
            serial=int(obj["serial"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError("response state is malformed") from exc


def load_verified(path: Path, verifier: Any) -> ResponseState:
    """Read and verify the state (empty when none was written); ``verifier`` has ``verify(data, sig)``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ResponseState()
    try:
        line, data = raw.split(b"\n", 1)
        verifier.verify(data, base64.b64decode(line, validate=True))
    except Exception as exc:  # missing or wrong signature: one opaque failure
        raise IntegrityError("response state failed its signature check") from exc
    return _parse(data)


def save(path: Path, state: ResponseState, signer: Signer) -> ResponseState:
    """Sign and atomically replace the state (serial incremented); returns what was written."""
    state = replace(state, serial=state.serial + 1, handled=state.handled[-5000:])
    data = json.dumps(state.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    signature = signer.sign(data)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # one file, one rename: a reader sees the old or the new pair, never a mix
    atomic_write(path, base64.b64encode(signature) + b"\n" + data)
    return state


__all__ = ["SECTIONS", "ResponseState", "load_verified", "save", "state_path"]
