"""Automated response: playbooks (TOML) that turn hunting findings into actions through bastion's controls.

::

    from bastion.respond import Responder, load_playbook, watch
    responder = Responder(vault=vault, playbook=load_playbook(), mode="auto")   # or "dry-run", "approve"
    results = responder.respond(hunt(store=store).findings)
    watch(responder=responder, store=store)          # the ``bastion respond --watch`` loop

The gateway-side controls (blocked/throttled clients and identities, quarantined models, guard mode) live in
a signed state file: :mod:`bastion.respond.state`; a gateway reads it with :func:`load_verified`.
"""

from bastion.respond.playbook import ACTIONS, MODES, Playbook, PlaybookRule, load_playbook, parse_playbook
from bastion.respond.responder import UNDOABLE, ActionResult, PlannedAction, Responder
from bastion.respond.state import ResponseState, load_verified, state_path
from bastion.respond.watch import Tick, watch

__all__ = [
    "ACTIONS",
    "MODES",
    "UNDOABLE",
    "ActionResult",
    "PlannedAction",
    "Playbook",
    "PlaybookRule",
    "Responder",
    "ResponseState",
    "Tick",
    "load_playbook",
    "load_verified",
    "parse_playbook",
    "state_path",
    "watch",
]
