"""The responder: findings → playbook actions through bastion's own controls, each one audit-logged.

Actions and where they take effect:

* ``revoke-tokens`` — every active API token of the identity (:meth:`AccessControl.revoke_token`); not undone.
* ``disable-identity`` — the identity and all its tokens (:meth:`AccessControl.revoke`); not undone (grant
  again, deliberately).
* ``block-identity`` / ``block-client`` / ``throttle-client`` / ``quarantine-model`` / ``guard-block-mode`` —
  entries in the signed response state (:mod:`bastion.respond.state`) that the gateway reads; undoable.
  A quarantine also makes the registry refuse pulls of the model (the vault reads the same signed state)
  and un-promotes its latest version one environment (:meth:`KeyAdmin.unpromote`); undo promotes it back.
* ``rotate-key`` — a new KEK for the environment with every data key rewrapped (:meth:`Vault.rotate_keys`).

Every action taken (and every undo) appends ``respond:<action>`` to the audit log with the finding that caused
it (rule id, finding key, technique ids, the first event ids). Modes: ``dry-run`` plans and changes nothing,
``approve`` asks ``approve(plan)`` per action (or, given a :class:`~bastion.respond.pending.PendingQueue`
and no callback, queues it as ``pending`` for ``bastion respond --approve-pending``), ``auto`` acts.
A finding resting (in any part) on a remote gateway's records (``source`` ``remote-gateway``: what
``POST /v1/gateway/audit`` wrote) is never acted on automatically: every action waits for approval, since
the state's blocks, revocations and key rotations act everywhere while that gateway is trusted for its own
model only. Targets that are unknown (``-``) or the responder's own identity are skipped, and so is every
action for a finding about the responder's own identity (its operator's actions, e.g. a key rotation), so a
finding can never make the responder lock itself out nor act on its operator's maintenance.

Length: planning, the evidence and client-target checks, carrying out and logging an action are one
transaction over one signed state (saved once per call); the client-target policy lives in ``_clients``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from bastion.config import ENVIRONMENTS
from bastion.errors import BastionError, IntegrityError, InvalidInput, NotFound, ServiceError
from bastion.events.store import EventStore
from bastion.events.verify import EvidenceVerifier
from bastion.hunt.report import Finding
from bastion.respond._clients import network_of, refusal, shared
from bastion.respond.pending import PendingQueue
from bastion.respond.playbook import MODES, Playbook
from bastion.respond.rollback import rollback_check
from bastion.respond.state import ResponseState, load_verified, save, state_path
from bastion.store.response_state import (
    STATE_ACTION,
    LoggedState,
    check_current,
    restored,
    state_record,
)

_STATE_ACTIONS = {
    "block-identity": "blocked_identities",
    "block-client": "blocked_clients",
    "throttle-client": "throttled_clients",
    "quarantine-model": "quarantined_models",
}
UNDOABLE = frozenset({*_STATE_ACTIONS, "guard-block-mode"})
CLIENT_ACTIONS = frozenset({"block-client", "throttle-client"})
CLIENT_BLOCK_S = 3600.0  # a client address's block or throttle lasts this long (renewed by a new finding)
ANOMALY_PREFIX = "anomaly."  # the anomaly model's findings (bastion.hunt.anomaly): approval by default
_REFUSALS_REMEMBERED = 10_000  # refusals logged once each (then the memory starts over)


@dataclass(frozen=True)
class PlannedAction:
    action: str
    target: str
    finding: Finding
    env: str = "prod"
    shared: bool = False  # approved by an operator although others' authenticated traffic used the address


@dataclass(frozen=True)
class ActionResult:
    """``status``: done, planned (dry-run), declined (approval refused), pending (queued for approval),
    skipped, failed, refused (its evidence does not match the signed audit log)."""

    action: str
    target: str
    status: str
    finding_key: str
    rule_id: str
    mode: str
    at: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "finding": self.finding_key,
            "rule_id": self.rule_id,
            "mode": self.mode,
            "at": self.at,
            "detail": self.detail,
        }


def _target(action: str, finding: Finding) -> str:
    if action in ("revoke-tokens", "disable-identity", "block-identity"):
        return finding.identity
    if action in ("block-client", "throttle-client"):
        return finding.client
    if action == "quarantine-model":
        return finding.model
    return "*"


def _unspanned(planned: PlannedAction, verifier: EvidenceVerifier | None) -> bool:
    """Whether a network target (a /24, /16, ...) is wider than the finding's named events span: they must
    all lie inside it and come from two or more of its parts (addresses of a /24 or /64 and narrower; /24s
    or /64s of a wider one), as the hunt widens a spray's target (issue 17 attack17e A2-A5). One address is
    always spanned; with no event store to look in, a network is not."""
    network = network_of(planned.target)
    if network is None or network.num_addresses == 1:
        return False
    ids = list(planned.finding.event_ids)
    if verifier is None or not ids:
        return True
    store = verifier.store
    binds = {f"e{j}": i for j, i in enumerate(ids)}
    rows = store.query(
        f"SELECT DISTINCT client FROM {store.table} WHERE id IN ({', '.join(':' + b for b in binds)})",  # noqa: S608 - ours; bound
        binds,
    )
    part = (
        (24 if network.prefixlen < 24 else 32)
        if network.version == 4
        else (64 if network.prefixlen < 64 else 128)
    )
    parts = set()
    for r in rows:
        address = network_of(str(r.client))
        if address is None or address.version != network.version or not address.subnet_of(network):  # type: ignore[arg-type]
            return True  # a named event from outside the target
        parts.add(address.supernet(new_prefix=part) if address.prefixlen > part else address)
    return len(parts) < 2


class Responder:
    """Acts on findings for one vault (opened as an admin/owner identity) with one playbook."""

    def __init__(
        self,
        *,
        vault: Any,
        playbook: Playbook,
        mode: str = "dry-run",
        approve: Callable[[PlannedAction], bool] | None = None,
        pending: PendingQueue | None = None,
        trusted: Sequence[str] = (),
        local: Sequence[str] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        self.vault = vault
        self.playbook = playbook
        self.mode = mode
        self._approve = approve
        self._pending = pending
        if pending is not None and pending.sealer is None:  # proposals sealed with the home's row sealer
            pending.sealer = getattr(getattr(vault, "access", None), "sealer", None)
        self._trusted = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)
        # the gateway host's own addresses (default: all of loopback); a deployment where other loopback
        # addresses stand for distinct clients (the demo) narrows it
        self._local = None if local is None else tuple(ipaddress.ip_network(t, strict=False) for t in local)
        self._now = now
        self.path = state_path(vault.settings.home)
        engine = getattr(vault, "engine", None)
        self._logged = None if engine is None else LoggedState(engine, getattr(vault, "signer", None))
        audit = getattr(vault, "audit", None)
        # the log's witnesses, if any ([[log.witness]] and $BASTION_WITNESS from outside the home)
        self._rollback = None if audit is None else rollback_check(audit, home=vault.settings.home)
        self._dirty = False  # the state holds changes not yet signed (saved once per respond call)
        self._alerted: set[str] = set()
        # refusals already logged, by what was refused and why (the finding, action, target, reason and the
        # events named): a finding refused again on a later tick is not logged again, so a persistently
        # refused finding cannot make every --watch tick write an entry that triggers the next hunt
        self._refused_logged: set[tuple[str, ...]] = set()

    def state(self) -> ResponseState:
        """The signed state, refused (IntegrityError) when missing or older than the audit log records, or
        when the log is behind its witnesses (a rolled-back home: :mod:`bastion.respond.rollback`)."""
        state = load_verified(self.path, self.vault.signer)
        if self._logged is not None:
            check_current(state if self.path.exists() else None, self._logged.latest())
        if self._rollback is not None:
            self._rollback()
        return state

    def _save(self, state: ResponseState) -> ResponseState:
        """Sign and write the state, then record its serial, digest and blocks in the audit log."""
        state = save(self.path, state, self.vault.signer)
        self.vault.audit.append(
            actor=self.vault.identity.name,
            action=STATE_ACTION,
            target="-",
            outcome="ok",
            details=state_record(state),
        )
        return state

    def restore_state(self) -> ResponseState:
        """Rewrite a missing or rolled-back state file from the latest state the audit log records (its
        blocks, throttles, quarantines and guard mode; the handled finding keys are not in the log).

        The record is taken only after the whole log verifies against its signed heads
        (:meth:`AuditLog.verify`; IntegrityError otherwise), and read back with every head signature checked
        (``LoggedState.latest_verified``), so a row edited in the metadata database is never re-signed."""
        if self._logged is None:
            raise NotFound("the audit log records no response state")
        audit = self.vault.audit
        audit.verify()  # the whole tree against every signed head; IntegrityError on any edited row
        signer = getattr(audit, "signer", None)
        if signer is None:
            raise IntegrityError("response state: no key to verify the audit log's heads with")
        logged = LoggedState(self.vault.engine).latest_verified(signer)
        if logged is None:
            raise NotFound("the audit log records no response state")
        state = restored(logged)
        return self._save(state)

    def plan(
        self, findings: Iterable[Finding], *, handled: Iterable[str] = ()
    ) -> list[tuple[PlannedAction, str]]:
        """(action, mode) pairs for findings not yet handled, de-duplicated by (action, target).

        An anomaly finding (rule id ``anomaly.*``) is acted on automatically only by a rule that says
        ``mode = "auto"``; under a rule that names no mode it waits for approval even in auto mode."""
        seen = set(handled)
        out: list[tuple[PlannedAction, str]] = []
        taken: set[tuple[str, str]] = set()
        for finding in findings:
            if finding.key in seen:
                continue
            for rule in self.playbook.rules_for(finding):
                mode = self.mode if self.mode == "dry-run" else rule.mode or self.mode
                if rule.mode is None and mode == "auto" and finding.rule_id.startswith(ANOMALY_PREFIX):
                    mode = "approve"  # no rule names what it saw: a person decides unless a rule says auto
                for action in rule.actions:
                    target = rule.env if action == "rotate-key" else _target(action, finding)
                    if (action, target) in taken:
                        continue
                    taken.add((action, target))
                    out.append((PlannedAction(action, target, finding, rule.env), mode))
        return out

    def respond(self, findings: Iterable[Finding], *, events: EventStore | None = None) -> list[ActionResult]:
        """Plan and (per mode) carry out the actions for new findings; returns what happened to each.

        ``events``: the store the findings came from; each finding's evidence is then checked against the
        signed audit log before any action (see the module docstring)."""
        findings = list(findings)
        try:
            state = self.state()
        except IntegrityError as exc:  # the state (or the log recording it) does not verify: say so loudly
            if self.mode != "dry-run":
                self._alert(str(exc), len(findings))
            raise
        results = []
        verifier = None if events is None else EvidenceVerifier(log=self.vault, store=events)
        plan = self.plan(findings, handled=state.handled)
        if plan and verifier is not None and self.mode != "dry-run":
            self._halt_unless_verified(verifier, len(findings))
        refused: dict[str, str | None] = {}
        self._dirty = False
        try:
            for planned, mode in plan:
                result, state = self._checked(planned, mode, state, verifier, refused)
                results.append(result)
        finally:
            self._log_capped()
            if self.mode != "dry-run":
                # a refused finding is not handled: once its evidence checks out it is acted on
                new = [f.key for f in findings if f.key not in state.handled and refused.get(f.key) is None]
                if new or self._dirty:  # one signed state (and one log record) per call, not per action
                    state = self._save(replace(state, handled=(*state.handled, *dict.fromkeys(new))))
                self._dirty = False
        return results

    def _log_capped(self) -> None:
        """One audit entry for the remote proposals the pending queue did not take in this call (a gateway
        over its share, :data:`bastion.respond.pending.MAX_PER_ORIGIN`), by gateway."""
        if self._pending is None or not self._pending.capped:
            return
        capped = dict(self._pending.capped.most_common(20))
        self._pending.capped.clear()
        with contextlib.suppress(BastionError):
            self.vault.audit.append(
                actor=self.vault.identity.name,
                action="respond:pending-capped",
                target="-",
                outcome="error",
                details={"by_origin": capped},
            )

    def _halt_unless_verified(self, verifier: EvidenceVerifier, findings: int) -> None:
        """Raise (IntegrityError) when the audit log does not verify: no evidence can be checked, so
        nothing is acted on and nothing is consumed; the failure is audit-logged once per responder."""
        failure = verifier.log_failure()
        if failure is None:
            return
        self._alert(failure, findings)
        raise IntegrityError(f"response halted, nothing acted on: {failure}")

    def _alert(self, failure: str, findings: int) -> None:
        """Audit-log (once per responder and failure) that responses are halted."""
        if failure in self._alerted:
            return
        self._alerted.add(failure)
        with contextlib.suppress(BastionError):  # the log refuses the entry: the raised error still says why
            self.vault.audit.append(
                actor=self.vault.identity.name,
                action="respond:halted",
                target="-",
                outcome="error",
                details={"detail": failure[:500], "findings": findings},
            )

    def _checked(
        self,
        planned: PlannedAction,
        mode: str,
        state: ResponseState,
        verifier: EvidenceVerifier | None,
        refused: dict[str, str | None],
        approved: bool = False,
    ) -> tuple[ActionResult, ResponseState]:
        """:meth:`_one`, after the finding's evidence is checked against the log (when ``verifier``)."""
        origin = "home"  # whose records the proposal rests on (the pending queue's share: pending.py)
        if verifier is not None and mode != "dry-run":
            f = planned.finding
            if f.key not in refused:
                refused[f.key] = verifier.check(
                    f.event_ids, identity=f.identity, client=f.client, model=f.model
                )
            if refused[f.key] is not None:
                detail = f"evidence refused: {refused[f.key]}"
                self._log_refusal(planned, mode, detail)
                return self._result(planned, mode, "refused", detail), state
            remote = verifier.remote_gateways(f.event_ids)
            origin = ",".join(sorted(remote))[:200] if remote else origin
            if mode == "auto" and not approved and remote:
                mode = "approve"  # a remote gateway's word (any identity, any address): a person decides
        if planned.action in CLIENT_ACTIONS and mode != "dry-run":
            why_not = refusal(planned.target, trusted=self._trusted, approved=approved, local=self._local)
            if why_not is not None:
                self._log_refusal(planned, mode, why_not)
                return self._result(planned, mode, "refused", why_not), state
            if mode == "auto" and not approved and _unspanned(planned, verifier):
                mode = "approve"  # a network wider than the finding's named events span: a person decides
            if mode == "auto" and self._shared(planned, verifier):
                if not approved:
                    mode = "approve"  # never automatic against an address others share
                else:  # an operator approved it knowingly: still said in the log and the result
                    planned = replace(planned, shared=True)
        return self._one(planned, mode, state, origin=origin)

    def _shared(self, planned: PlannedAction, verifier: EvidenceVerifier | None) -> bool:
        """:func:`bastion.respond._clients.shared`, looked up in the event store the findings came from (only
        events that pass ``verifier``'s evidence check count)."""
        return shared(
            planned.target, planned.finding, verifier=verifier, trusted=self._trusted, local=self._local
        )

    def settle_pending(self, ident: str, *, approve: bool, events: EventStore | None = None) -> ActionResult:
        """Approve (act on, after the evidence check when ``events`` is given) or decline one queued
        proposal (:class:`~bastion.respond.pending.PendingQueue`); logged like any action."""
        if self._pending is None:
            raise InvalidInput("this responder has no pending queue")
        action, target, env, finding = self._pending.take(ident)
        planned = PlannedAction(action, target, finding, env)
        if not approve:
            self._log(planned, "approve", "denied", "declined by an operator")
            return self._result(planned, "approve", "declined")
        # the file is not signed: the action, target and environment must follow from the finding
        expected = {
            (a, rule.env if a == "rotate-key" else _target(a, finding), rule.env)
            for rule in self.playbook.rules_for(finding)
            if rule.mode != "dry-run"
            for a in rule.actions
        }
        if (action, target, env) not in expected:
            detail = "the proposal does not follow from its finding through the playbook"
            self._log(planned, "approve", "denied", detail)
            return self._result(planned, "approve", "refused", detail)
        verifier = None if events is None else EvidenceVerifier(log=self.vault, store=events)
        self._dirty = False
        state = self.state()
        try:
            result, state = self._checked(planned, "auto", state, verifier, {}, approved=True)
        finally:
            if self._dirty:
                self._save(state)
            self._dirty = False
        return result

    def _result(self, planned: PlannedAction, mode: str, status: str, detail: str = "") -> ActionResult:
        f = planned.finding
        return ActionResult(
            planned.action, planned.target, status, f.key, f.rule_id, mode, self._now(), detail
        )

    def _one(
        self, planned: PlannedAction, mode: str, state: ResponseState, *, origin: str = "home"
    ) -> tuple[ActionResult, ResponseState]:
        me = getattr(self.vault.identity, "name", None)
        if planned.target in ("-", "") or me in (planned.target, planned.finding.identity):
            return self._result(planned, mode, "skipped", "no target (or the responder itself)"), state
        if mode == "dry-run":
            return self._result(planned, mode, "planned"), state
        if mode == "approve" and self._approve is None and self._pending is not None:
            ident = self._pending.add(
                action=planned.action,
                target=planned.target,
                env=planned.env,
                finding=planned.finding,
                at=self._now(),
                origin=origin,
            )
            if ident is None:  # that remote gateway's share of the queue is full: audit-logged once per call
                return self._result(planned, mode, "refused", f"pending queue: {origin} has too many"), state
            for item in self._pending.evicted:  # the queue was full: its oldest proposal dropped, unsettled
                self.vault.audit.append(
                    actor=self.vault.identity.name,
                    action="respond:pending-evicted",
                    target=str(item.get("target", "-")),
                    outcome="error",
                    details={"id": item.get("id"), "action": item.get("action")},
                )
            return self._result(planned, mode, "pending", f"bastion respond --approve-pending {ident}"), state
        if mode == "approve" and (self._approve is None or not self._approve(planned)):
            return self._result(planned, mode, "declined"), state
        try:
            state, detail = self._apply_retrying(planned, state)
        except BastionError as exc:
            self._log(planned, mode, "error", str(exc))
            return self._result(planned, mode, "failed", str(exc)), state
        if planned.shared:
            detail = f"{detail} (approved although others' authenticated traffic used the address)"
        self._log(planned, mode, "ok", detail)
        return self._result(planned, mode, "done", detail), state

    def _apply_retrying(self, planned: PlannedAction, state: ResponseState) -> tuple[ResponseState, str]:
        """SQLite refuses a deferred transaction's upgrade to a writer at once (no busy wait) when another
        connection wrote meanwhile; the access-control writes open such transactions, so retry briefly."""
        for attempt in range(5):
            try:
                return self._apply(planned, state)
            except sa.exc.OperationalError as exc:
                if attempt == 4:
                    raise ServiceError("metadata database busy: the action was not taken") from exc
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def _apply(self, planned: PlannedAction, state: ResponseState) -> tuple[ResponseState, str]:
        action, target, f = planned.action, planned.target, planned.finding
        why = {"finding": f.key, "rule_id": f.rule_id, "at": self._now()}
        access = self.vault.access
        if action == "quarantine-model":
            # pulls refused first (the signed state the vault and the gateway read), then un-promoted
            state = self._save(state.with_entry("quarantined_models", target, why))
            moved = self._unpromote(target)
            if moved is None:
                return state, f"quarantined_models += {target}"
            why = {**why, "unpromoted": moved[0], "from": moved[1]}
            self._dirty = True
            state = state.with_entry("quarantined_models", target, why)
            return state, f"quarantined_models += {target}; {moved[0]} un-promoted {moved[1]} -> {moved[2]}"
        if action in CLIENT_ACTIONS:
            why = {**why, "until": self._now() + CLIENT_BLOCK_S}
        if action in _STATE_ACTIONS:
            self._dirty = True
            return state.with_entry(
                _STATE_ACTIONS[action], target, why
            ), f"{_STATE_ACTIONS[action]} += {target}"
        if action == "guard-block-mode":
            self._dirty = True
            return replace(state, guard_mode="block"), "guard mode = block"
        if action == "revoke-tokens":
            ids = [t.id for t in access.list_tokens() if t.identity == target and not t.revoked]
            for token_id in ids:
                access.revoke_token(token_id)
            return state, f"{len(ids)} token(s) revoked"
        if action == "disable-identity":
            try:
                access.revoke(name=target)
            except NotFound:
                return state, "identity already disabled or unknown"
            return state, "identity disabled, tokens revoked"
        rotation = self.vault.rotate_keys(env=planned.env)
        return state, f"key rotated for {planned.env} ({getattr(rotation, 'rewrapped', '?')} keys rewrapped)"

    def _unpromote(self, target: str) -> tuple[str, str, str] | None:
        """The quarantined version back one environment (a served model: the gateway's is named by it)."""
        key_admin = getattr(self.vault, "key_admin", None)
        if key_admin is None:  # a remote vault: the server's responder un-promotes
            return None
        # a version named, or the model's version in its furthest environment (what prod serves)
        refs = (
            [target] if (":" in target or "@" in target) else [f"{target}@{e}" for e in ENVIRONMENTS[:0:-1]]
        )
        for ref in refs:
            try:
                return key_admin.unpromote(ref)  # type: ignore[no-any-return]
            except NotFound:
                continue  # not in that environment, or a served model's name this registry does not hold
        return None

    def _log_refusal(self, planned: PlannedAction, mode: str, detail: str) -> None:
        """Log a refusal once per responder for the same finding, action, target, reason and evidence."""
        f = planned.finding
        ids = ",".join(str(i) for i in sorted(f.event_ids))
        key = (f.key, planned.action, planned.target, detail, hashlib.sha256(ids.encode()).hexdigest())
        if key in self._refused_logged:
            return
        if len(self._refused_logged) >= _REFUSALS_REMEMBERED:
            self._refused_logged.clear()
        self._refused_logged.add(key)
        self._log(planned, mode, "denied", detail)

    def _log(self, planned: PlannedAction, mode: str, outcome: str, detail: str) -> None:
        f = planned.finding
        self.vault.audit.append(
            actor=self.vault.identity.name,
            action=f"respond:{planned.action}",
            target=planned.target,
            outcome=outcome,
            details={
                "mode": mode,
                "finding": f.key,
                "rule_id": f.rule_id,
                "techniques": list(f.techniques),
                "events": list(f.event_ids[:20]),
                "detail": detail,
            },
        )

    def undo(self, *, action: str, target: str) -> ActionResult:
        """Lift a state action (block, throttle, quarantine, guard mode); logged like the action."""
        if action not in UNDOABLE:
            raise InvalidInput(f"{action} cannot be undone (allowed: {', '.join(sorted(UNDOABLE))})")
        state = self.state()
        if action == "guard-block-mode":
            self._save(replace(state, guard_mode=None))
        else:
            section = _STATE_ACTIONS[action]
            if target not in getattr(state, section):
                raise NotFound(f"{target!r} is not in {section}")
            entry = getattr(state, section)[target]
            if action == "quarantine-model" and entry.get("unpromoted"):  # restore the promotion first
                self.vault.promote(str(entry["unpromoted"]), to=str(entry["from"]))
            self._save(state.with_entry(section, target, None))
        self.vault.audit.append(
            actor=self.vault.identity.name,
            action=f"respond:undo-{action}",
            target=target,
            outcome="ok",
            details={},
        )
        return ActionResult(action, target, "undone", "-", "-", "manual", self._now())


__all__ = ["CLIENT_BLOCK_S", "UNDOABLE", "ActionResult", "PlannedAction", "Responder"]
