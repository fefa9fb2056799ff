"""A rolled-back home, caught by the audit log's witnesses before the response state is believed.

The response state is checked against the audit log's latest ``respond:state`` record
(:func:`bastion.store.response_state.check_current`), and that record against the log's signed heads. What
those checks cannot see is a *consistent* past: ``bastion.db``, ``audit-head.json`` and
``respond/state.json`` replaced together by an older snapshot (every head in it is genuinely signed), which
lifts every block and quarantine made since. The log's witnesses (``[[log.witness]]`` in ``bastion.toml``:
:mod:`bastion.store.witness`, a file on storage the home's owner cannot rewrite or a ``bastion witness
serve`` service) keep the heads outside the home; :class:`RollbackCheck` refuses (IntegrityError) a log that
is behind the largest head a witness holds, or whose head of that size differs from it (a fork after the
rollback). The responder, the gateway's gate, the team server's admission check and its
``GET /v1/respond/state`` call it before believing a state; with no witness configured it does nothing
(``enabled`` is False) and the residual is as documented in the README.

``[[log.witness]]`` lives in the home's own ``bastion.toml``, which the home's writer can edit: whoever
restores the snapshot also deletes the table (attack17d A5). Witnesses named from outside the home
(``$BASTION_WITNESS``, set by ``--witness`` on ``bastion serve``, ``guard serve``, ``server`` and ``respond``:
``FILE`` or ``URL,key=PEM[,ca=PEM]``, space-separated) are checked besides the table's, and
``$BASTION_REQUIRE_WITNESS=1`` (``--require-witness``) refuses to start without any witness at all.

Cost: a file witness is read incrementally (only the bytes appended since the last check; a file that
shrank is refused); an HTTP witness is asked for its heads (one request). The gate calls it only when the
state file changes. A witness that cannot be read fails closed too (the error says which).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.errors import BastionError, ConfigError, IntegrityError, InvalidInput, NotFound, ServiceError
from bastion.store.auditlog import SignedTreeHead
from bastion.store.witness import FileWitness, witnesses_from_config

WITNESS_ENV = "BASTION_WITNESS"
REQUIRE_ENV = "BASTION_REQUIRE_WITNESS"


def witnesses_from_specs(specs: Sequence[str], *, home: Path) -> list[Any]:
    """Witnesses named from outside the home: ``FILE`` (an append-only heads file) or
    ``URL,key=PEM[,ca=PEM]`` (a ``bastion witness`` service and its public key)."""
    tables: list[dict[str, str]] = []
    for spec in specs:
        head, *opts = spec.split(",")
        if head.startswith(("https://", "http://")):
            table = {"kind": "http", "url": head}
            for opt in opts:
                key, sep, value = opt.partition("=")
                if not sep or key not in ("key", "ca", "name"):
                    raise InvalidInput(f"--witness {spec!r}: options are key=PEM, ca=PEM, name=NAME")
                table[key] = value
        elif opts:
            raise InvalidInput(f"--witness {spec!r}: a file witness takes no options")
        else:
            table = {"kind": "file", "path": head}
        tables.append(table)
    try:
        return witnesses_from_config(tables, home=home)
    except ConfigError as exc:
        raise InvalidInput(str(exc).replace("[[log.witness]]", "--witness")) from exc


def env_specs() -> list[str]:
    return [s for s in re.split(r"\s+", os.environ.get(WITNESS_ENV, "").strip()) if s]


def witness_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def name_outside_witnesses(specs: Sequence[str], *, require: bool, home: Path) -> None:
    """``--witness``/``--require-witness`` of a service command: checked now (a bad spec exits 2 before
    anything starts) and handed to every check in this process and its workers through the environment."""
    specs = [*env_specs(), *specs]
    witnesses_from_specs(specs, home=home)
    if specs:
        os.environ[WITNESS_ENV] = " ".join(specs)
    if require:
        os.environ[REQUIRE_ENV] = "1"


class RollbackCheck:
    """``check()`` raises IntegrityError when ``audit`` (an :class:`~bastion.store.auditlog.AuditLog`) is
    behind, or forked from, what its witnesses saw."""

    def __init__(self, audit: Any, *, outside: Sequence[Any] = ()) -> None:
        self._audit = audit
        # both, even when they name the same witness: the table could give a decoy the outside one's name
        self._witnesses = tuple(getattr(audit, "witnesses", ()) or ()) + tuple(outside)
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, SignedTreeHead | None]] = {}  # path -> (bytes read, largest head)

    @property
    def enabled(self) -> bool:
        return bool(self._witnesses)

    def _file_head(self, witness: FileWitness) -> SignedTreeHead | None:
        """The largest head in a witness file, reading only what was appended since the last call."""
        key = str(witness.path)
        offset, best = self._files.get(key, (0, None))
        try:
            fd = os.open(witness.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            if offset:
                raise IntegrityError(f"witness {witness.name} disappeared") from None
            return None
        except OSError as exc:
            raise ServiceError(f"witness {witness.name}: cannot read ({exc.strerror})") from exc
        try:
            with os.fdopen(fd, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < offset:
                    raise IntegrityError(f"witness {witness.name} shrank: the file was rewritten")
                fh.seek(offset)
                data = fh.read()
        except OSError as exc:
            raise ServiceError(f"witness {witness.name}: cannot read ({exc.strerror})") from exc
        end = data.rfind(b"\n") + 1  # whole lines only: a partial last line is read next time
        for line in data[:end].splitlines():
            if line.strip():
                head = _head(line, witness.name)
                best = head if best is None or head.size > best.size else best
        self._files[key] = (offset + end, best)
        return best

    def _held(self, witness: Any) -> SignedTreeHead | None:
        if isinstance(witness, FileWitness):
            return self._file_head(witness)
        heads = [h for h in witness.heads() if h.size > 0]
        return max(heads, key=lambda h: h.size) if heads else None

    def check(self) -> None:
        if not self._witnesses:
            return
        audit = self._audit
        with self._lock:
            held: list[tuple[str, SignedTreeHead]] = []
            for witness in self._witnesses:  # first: a head appended meanwhile is in the database already
                try:
                    head = self._held(witness)
                except (IntegrityError, ServiceError):
                    raise
                except BastionError as exc:
                    raise ServiceError(f"witness {witness.name}: {exc}") from exc
                if head is not None and head.size > 0:
                    held.append((witness.name, head))
            latest = audit.tree_head()  # the log pushes a head to its witnesses only after committing it
            for name, head in held:
                self._compare(name, head, latest)

    def _compare(self, name: str, held: SignedTreeHead, latest: SignedTreeHead) -> None:
        audit = self._audit
        try:
            audit.signer.verify(held.signed_data(), held.signature)
        except Exception as exc:
            raise IntegrityError(
                f"witness {name} holds a head of size {held.size} this log's key did not sign"
            ) from exc
        if held.size > latest.size:
            raise IntegrityError(
                f"the audit log has {latest.size} entries but witness {name} saw {held.size}: the home "
                "was rolled back (restore the latest backup of bastion.db, audit-head.json and "
                "respond/state.json)"
            )
        try:
            mine = audit.signed_head(held.size)
        except NotFound:
            audit.verify()  # no head of that size here: the full consistency check decides
            return
        if bytes(mine.root_hash) != bytes(held.root_hash):
            raise IntegrityError(
                f"the audit log's first {held.size} entries differ from what witness {name} saw: the "
                "home was rolled back and rewritten"
            )

    __call__ = check


def _head(line: bytes, name: str) -> SignedTreeHead:
    try:
        return SignedTreeHead.from_dict(json.loads(line))
    except (ValueError, TypeError, IntegrityError) as exc:
        raise IntegrityError(f"witness {name}: a line is not a signed tree head") from exc


def rollback_check(audit: Any, *, home: Path | None = None) -> RollbackCheck | None:
    """The check for ``audit`` with the home's witnesses and those of ``$BASTION_WITNESS``, or None when
    there is none (nothing to compare with); ConfigError when ``$BASTION_REQUIRE_WITNESS`` asks for one."""
    outside = witnesses_from_specs(env_specs(), home=home or Path.cwd()) if env_specs() else []
    check = RollbackCheck(audit, outside=outside)
    if not check.enabled and witness_required():
        raise ConfigError(
            "a witness is required (--require-witness / $BASTION_REQUIRE_WITNESS) but none is named: "
            "give --witness or $BASTION_WITNESS from outside the home"
        )
    return check if check.enabled else None


__all__ = [
    "REQUIRE_ENV",
    "WITNESS_ENV",
    "RollbackCheck",
    "name_outside_witnesses",
    "rollback_check",
    "witnesses_from_specs",
]
