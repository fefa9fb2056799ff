"""The signed response state (blocked/throttled clients and identities, quarantined models, guard mode).

It lives in :mod:`bastion.store.response_state` (layer 3), so that the vault can refuse pulls of a
quarantined model without importing the responder; this module keeps the names ``bastion.respond`` uses.
"""

from __future__ import annotations

from bastion.store.response_state import (
    FORMAT,
    SECTIONS,
    STATE_DIR,
    STATE_FILE,
    ResponseState,
    Signer,
    load_verified,
    save,
    state_path,
)

__all__ = [
    "FORMAT",
    "SECTIONS",
    "STATE_DIR",
    "STATE_FILE",
    "ResponseState",
    "Signer",
    "load_verified",
    "save",
    "state_path",
]
