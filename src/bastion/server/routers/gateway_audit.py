"""Request records of remote gateways into the server's audit log (issue 17 M2c): ``POST /v1/gateway/audit``.

A gateway started with ``bastion serve MODEL --server URL`` has no audit log of its own. Its batched writer
(:class:`bastion.serve.observability.BatchedAuditWriter`, one ``serve:requests`` entry per batch of requests,
plus its security events) appends through :class:`bastion.client.gateway.RemoteAuditSink`, which posts each
entry here, so ``bastion events`` / ``bastion hunt`` / ``bastion respond`` see team-mode traffic the way they
see a home gateway's.

What a gateway may write, checked before anything is appended:

- only ``gateway``-role identities, and only for a ``NAME:VERSION`` this server process released to that
  identity by attested release (its token alone, without the attester key and an approved configuration,
  writes nothing);
- only the actions a gateway writes (:data:`ACTIONS`), at most :data:`MAX_ENTRIES` entries a call, outcome
  ``ok``/``denied``/``error``;
- the entry's actor is the gateway identity (never a name it chooses); an identity named ``gateway`` (the
  home gateway's actor) writes nothing;
- details of a strict shape: a ``serve:requests`` batch is the gateway writer's format exactly (request
  records with a finite ``ts``, an integer ``status``, bounded strings; by-client counts up to
  :data:`bastion.events.collect.MAX_COUNT`; no other keys), a security event a flat object of at most
  :data:`MAX_FLAG_KEYS` keys with scalar (or short list) values. Anything else is refused (422), never logged.

- at most :data:`MAX_CLIENTS_PER_HOUR` distinct client addresses per gateway identity an hour (per server
  process; attack17d A2: one entry naming 1,000 made-up addresses made 1,000 findings and flooded the
  approval queue): the records of further addresses are kept with client ``-`` (their counts summed, by
  decision), so the counts stay and no finding or block can name them.

The records' contents (who called, from where, with what decision) are the gateway's word: it is the
enforcement point for its model, trusted for that model's traffic and nothing else. The event collector
tags them with the gateway (``source`` ``remote-gateway``), binds them to the released model and the
entry's time, and the responder acts on them only with an operator's approval (:mod:`bastion.events.collect`,
:mod:`bastion.respond.responder`).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from bastion.errors import AccessDenied, InvalidInput
from bastion.events.collect import HOME_GATEWAY, MAX_COUNT, MAX_STATUS, REMOTE_ACTIONS
from bastion.server.deps import CallerIdentity, ServerStateDep

router = APIRouter()

ACTIONS = REMOTE_ACTIONS
MAX_ENTRIES = 100
MAX_RECORDS = 10_000  # request records (or by-client rows) in one batch
MAX_FLAG_KEYS = 32
MAX_CLIENTS_PER_HOUR = 1_000  # distinct client addresses one gateway may name in an hour
WINDOW_S = 3600.0
logger = logging.getLogger(__name__)


class ClientBudget:
    """Distinct client addresses named per gateway identity in the last :data:`WINDOW_S` (thread-safe)."""

    def __init__(self, limit: int = MAX_CLIENTS_PER_HOUR, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def admit(self, gateway: str, clients: list[str], now: float) -> set[str]:
        """The addresses of ``clients`` (in priority order) that ``gateway`` may still name."""
        with self._lock:
            seen = self._seen.setdefault(gateway, {})
            for client, at in list(seen.items()):
                if now - at > self.window_s:
                    del seen[client]
            ok: set[str] = set()
            for client in clients:
                if client in ("-", "") or client in ok:
                    ok.add(client)
                elif client in seen or len(seen) < self.limit:
                    seen[client] = now
                    ok.add(client)
            return ok


BUDGET = ClientBudget()


def fold_clients(details: dict[str, Any], gateway: str, *, budget: ClientBudget, now: float) -> int:
    """Replace, in a checked ``serve:requests`` body, the client addresses beyond ``gateway``'s budget by
    ``-`` (by-client rows of one decision merged, counts summed up to MAX_COUNT); returns how many
    addresses were folded."""
    unauth = details.get("unauthenticated") or {}
    rows = sorted(unauth.get("by_client") or [], key=lambda r: -int(r.get("count", 0)))
    records = details.get("requests") or []
    wanted = [str(r.get("client", "-")) for r in rows] + [str(r.get("client", "-")) for r in records]
    ok = budget.admit(gateway, wanted, now)
    folded = {c for c in wanted if c not in ok}
    if not folded:
        return 0
    for record in records:
        if str(record.get("client", "-")) in folded:
            record["client"] = "-"
    if rows:
        kept = [r for r in unauth["by_client"] if str(r.get("client")) in ok]
        merged: dict[str, int] = {}
        for r in unauth["by_client"]:
            if str(r.get("client")) not in ok:
                merged[str(r["decision"])] = min(
                    MAX_COUNT, merged.get(str(r["decision"]), 0) + int(r["count"])
                )
        unauth["by_client"] = kept + [{"client": "-", "decision": d, "count": n} for d, n in merged.items()]
    return len(folded)


_Name = Annotated[StrictStr, Field(max_length=200)]
_Number = StrictInt | StrictFloat
_Scalar = StrictStr | StrictBool | StrictInt | StrictFloat | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RequestRecordBody(_Strict):
    """One request record as :class:`bastion.serve.observability.RequestRecord` writes it."""

    identity: _Name = "-"
    role: _Name = "-"
    model: _Name = "-"
    version: _Name = "-"
    method: Annotated[StrictStr, Field(max_length=16)] = "-"
    path: Annotated[StrictStr, Field(max_length=400)] = "-"
    status: Annotated[StrictInt, Field(ge=0, le=MAX_STATUS)] = 0
    decision: Annotated[StrictStr, Field(max_length=64)] = ""
    latency_ms: Annotated[_Number, Field(ge=0)] = 0.0
    ts: Annotated[_Number, Field(ge=0, lt=32503680000)] | None = None
    client: _Name = "-"


class ByClientBody(_Strict):
    client: _Name
    decision: Annotated[StrictStr, Field(max_length=64)]
    count: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]


class UnauthenticatedBody(_Strict):
    count: Annotated[StrictInt, Field(ge=0)] = 0
    by_decision: dict[Annotated[StrictStr, Field(max_length=64)], Annotated[StrictInt, Field(ge=0)]] = {}
    sample: list[RequestRecordBody] = Field(default_factory=list, max_length=1_000)
    by_client: list[ByClientBody] = Field(default_factory=list, max_length=MAX_RECORDS)


class RequestsDetails(_Strict):
    """The details of one ``serve:requests`` batch (``BatchedAuditWriter._write``)."""

    requests: list[RequestRecordBody] = Field(default_factory=list, max_length=MAX_RECORDS)
    unauthenticated: UnauthenticatedBody | None = None


class AuditEntryBody(BaseModel):
    action: str = Field(max_length=64)
    target: str = Field(max_length=400)
    outcome: str = Field(pattern="^(ok|denied|error)$")
    details: dict[str, Any] = Field(default_factory=dict)


def check_details(action: str, details: dict[str, Any]) -> None:
    """InvalidInput unless ``details`` has the strict shape of ``action``'s (see the module docstring)."""
    try:
        if action == "serve:requests":
            RequestsDetails.model_validate(details)
            return
        if len(details) > MAX_FLAG_KEYS:
            raise InvalidInput(f"{action} details: at most {MAX_FLAG_KEYS} keys")
        for key, value in details.items():
            _FlagEntry.model_validate({"key": key, "value": value})
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{action} details: {where}: {first.get('msg', 'invalid')}") from None


class _FlagEntry(_Strict):
    key: Annotated[StrictStr, Field(max_length=64)]
    value: _Scalar | Annotated[list[_Scalar], Field(max_length=64)]


class AuditBody(BaseModel):
    entries: list[AuditEntryBody] = Field(max_length=MAX_ENTRIES)


@router.post("/gateway/audit")
def append(state: ServerStateDep, identity: CallerIdentity, body: AuditBody) -> dict[str, int]:
    if identity.role != "gateway":
        raise AccessDenied(
            f"{identity.name} ({identity.role}) is not a gateway: it may not write gateway records"
        )
    if identity.name == HOME_GATEWAY:  # its entries would read as the home gateway's
        raise AccessDenied(f"an identity named {HOME_GATEWAY!r} may not write gateway records")
    for entry in body.entries:
        if entry.action not in ACTIONS:
            raise AccessDenied(f"a gateway may not write {entry.action!r} entries")
        if not state.was_released(identity, entry.target):
            raise AccessDenied(
                f"{entry.target} was not released to {identity.name} by this server: no records for it"
            )
        check_details(entry.action, entry.details)
    audit = state.base.audit
    for entry in body.entries:
        details = entry.details
        if entry.action == "serve:requests":
            details = copy.deepcopy(details)
            folded = fold_clients(details, identity.name, budget=BUDGET, now=time.time())
            if folded:
                logger.warning(
                    "gateway %s named more than %d client addresses this hour: %d recorded as '-'",
                    identity.name,
                    BUDGET.limit,
                    folded,
                )
        audit.append(
            actor=identity.name,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            details=details,
        )
    return {"written": len(body.entries)}
