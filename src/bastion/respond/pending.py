"""Pending proposals: approve-mode actions that ``respond --watch`` queues instead of asking a terminal.

A service has no one to ask: an approve-mode rule's action is written to ``HOME/respond/pending.json``
(status ``pending``) and the watch goes on; ``bastion respond --pending`` lists the queue and
``bastion respond --approve-pending ID`` / ``--decline-pending ID`` settle one. Each entry is sealed with
the home's row sealer (an HMAC under a key derived from the signing keys: :class:`~bastion.crypto.seal.
RowSealer`) when the responder has one: an entry a home writer adds or edits without the passphrase (a
made-up finding resting on one genuine benign event, attack17d A7) is not listed and is refused, and
removed, when settled. An entry only *proposes* anyway: approving one re-checks its finding's evidence
against the signed audit log before acting (:class:`bastion.events.verify.EvidenceVerifier`), and every
approval or refusal is audit-logged like any other action. Approving re-derives the action, target and
environment from the finding through the playbook, so an entry cannot name a target its finding does not.
A full queue drops its oldest proposals; each drop is logged (and audit-logged by the responder).

Remote gateways cannot crowd out the home's proposals (attack17d A2: one entry naming 1,000 made-up
addresses evicted a genuine proposal): each proposal records its ``origin`` (``home`` or the remote
gateways whose records it rests on); one origin other than ``home`` holds at most :data:`MAX_PER_ORIGIN`
proposals (beyond, its new ones are not queued: counted in :attr:`PendingQueue.capped`, which the responder
audit-logs as one entry per call), and a full queue evicts remote proposals before any of the home's and
never a home proposal for a remote one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bastion.errors import IntegrityError, NotFound
from bastion.files import atomic_write
from bastion.hunt.report import Finding

PENDING_FILE = "pending.json"
MAX_PENDING = 1000
MAX_PER_ORIGIN = 100  # proposals waiting from one remote gateway (or set of them)
HOME = "home"
SEAL_KIND = "pending-proposal"
_TUPLES = ("techniques", "technique_names", "event_ids")
logger = logging.getLogger(__name__)


def _finding(data: dict[str, Any]) -> Finding:
    fields = dict(data)
    for name in _TUPLES:
        fields[name] = tuple(fields.get(name) or ())
    fields["features"] = tuple(tuple(f) for f in fields.get("features") or ())
    return Finding(**fields)


class PendingQueue:
    """The queue of one home's proposals (a JSON list, newest last, at most :data:`MAX_PENDING`)."""

    def __init__(self, directory: Path, *, sealer: Any = None) -> None:
        self.path = directory / PENDING_FILE
        self.sealer = sealer  # a RowSealer (the responder gives its vault's when none is set)
        self.evicted: list[dict[str, Any]] = []  # the oldest proposals the last add() pushed out of the queue
        self.capped: Counter[str] = Counter()  # remote proposals not queued (over their share), by origin

    def _sealed(self, item: dict[str, Any]) -> bool:
        """Whether ``item`` carries this home's seal (always, without a sealer: nothing to check with)."""
        if self.sealer is None:
            return True
        state = {k: v for k, v in item.items() if k != "mac"}
        try:
            mac = bytes.fromhex(str(item["mac"]))
            self.sealer.check(SEAL_KIND, str(item.get("id")), state, mac, what="a pending proposal")
        except KeyError:
            logger.error("pending proposal %s refused: it carries no seal", item.get("id"))
            return False
        except (ValueError, IntegrityError) as exc:
            logger.error("pending proposal %s refused: %s", item.get("id"), exc)
            return False
        return True

    def _read(self) -> list[dict[str, Any]]:
        try:
            items = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise IntegrityError("the pending proposals file is malformed") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise IntegrityError("the pending proposals file is malformed")
        return items

    def _write(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write the newest :data:`MAX_PENDING` items; returns the older ones dropped (each logged)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        dropped = items[:-MAX_PENDING] if len(items) > MAX_PENDING else []
        atomic_write(self.path, json.dumps(items[-MAX_PENDING:], sort_keys=True, indent=1).encode())
        for item in dropped:
            logger.warning(
                "pending queue full (%d): proposal %s (%s %s) dropped unsettled",
                MAX_PENDING,
                item.get("id"),
                item.get("action"),
                item.get("target"),
            )
        return dropped

    def add(
        self, *, action: str, target: str, env: str, finding: Finding, at: float, origin: str = HOME
    ) -> str | None:
        """Queue one proposal (once per action, target and finding); returns its id, or None when a remote
        ``origin`` already has :data:`MAX_PER_ORIGIN` proposals waiting (or the queue is full of the
        home's): not queued, counted in :attr:`capped`."""
        ident = hashlib.sha256(f"{action}\0{target}\0{finding.key}".encode()).hexdigest()[:12]
        items = self._read()
        self.evicted = []
        if any(i.get("id") == ident for i in items):
            return ident
        if origin != HOME:
            mine = sum(1 for i in items if i.get("origin", HOME) == origin)
            if mine >= MAX_PER_ORIGIN or (
                len(items) >= MAX_PENDING and all(i.get("origin", HOME) == HOME for i in items)
            ):
                self.capped[origin] += 1
                return None
        item: dict[str, Any] = {
            "id": ident,
            "action": action,
            "target": target,
            "env": env,
            "at": at,
            "origin": origin,
            "finding": asdict(finding),
        }
        if self.sealer is not None:
            item["mac"] = self.sealer.seal(SEAL_KIND, ident, item).hex()
        items.append(item)
        self.evicted = self._write(_room(items))
        return ident

    def list(self) -> list[dict[str, Any]]:
        """The proposals carrying this home's seal (others logged and left out)."""
        return [i for i in self._read() if self._sealed(i)]

    def take(self, ident: str) -> tuple[str, str, str, Finding]:
        """Remove one proposal; returns (action, target, env, finding). One without this home's seal is
        removed and refused (IntegrityError)."""
        items = self._read()
        for item in items:
            if item.get("id") == ident:
                self._write([i for i in items if i is not item])
                if not self._sealed(item):
                    raise IntegrityError(
                        f"pending proposal {ident} is not sealed by this home (pending.json was edited "
                        "outside bastion): removed, nothing done"
                    )
                try:
                    return (
                        str(item["action"]),
                        str(item["target"]),
                        str(item["env"]),
                        _finding(item["finding"]),
                    )
                except (KeyError, TypeError) as exc:
                    raise IntegrityError(f"pending proposal {ident} is malformed") from exc
        raise NotFound(f"no pending proposal {ident!r} (bastion respond --pending lists them)")


def _room(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with the oldest remote proposals moved to the front, so a full queue drops those before any
    of the home's (the order among the kept ones stays)."""
    if len(items) <= MAX_PENDING:
        return items
    excess = len(items) - MAX_PENDING
    remote = [i for i in items if i.get("origin", HOME) != HOME][:excess]
    first = {id(i) for i in remote}
    return remote + [i for i in items if id(i) not in first]


__all__ = ["HOME", "MAX_PENDING", "MAX_PER_ORIGIN", "PENDING_FILE", "SEAL_KIND", "PendingQueue"]
