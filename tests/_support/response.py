"""Test cleanup for the response state of a shared (session-wide) project.

Deleting ``HOME/respond/state.json`` is a rollback now (the audit log records every save, and a missing file
refuses every pull and request: issue 17 H2), so tests that block or quarantine in a shared project lift
what they set instead, through the responder (each lift signed and logged like the action)."""

from __future__ import annotations

from typing import Any

from bastion.respond import Responder, load_playbook
from bastion.respond.responder import _STATE_ACTIONS


def lift_all(vault: Any) -> None:
    """Undo every block, throttle, quarantine and the guard block mode in ``vault``'s home."""
    responder = Responder(vault=vault, playbook=load_playbook())
    state = responder.state()
    for action, section in _STATE_ACTIONS.items():
        for target in list(getattr(state, section)):
            responder.undo(action=action, target=target)
    if state.guard_mode is not None:
        responder.undo(action="guard-block-mode", target="*")
