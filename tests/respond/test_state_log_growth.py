"""Issue 17 re-attack F10: N blocks must not cost O(N^2) bytes of signed audit log.

Each save used to log the whole state; now it logs what changed since the previous save (a full record only
once the changes logged since the last one outnumber the entries), the record the gateway and
``--restore-state`` read is folded from that chain, and expired entries are dropped on save.
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from bastion.hunt.report import Finding
from bastion.respond import Responder, load_verified, parse_playbook, state_path
from bastion.store.response_state import (
    SECTIONS,
    STATE_ACTION,
    LoggedState,
    ResponseState,
    logged_state,
    restored,
    save,
)
from bastion.store.tables import audit_entries
from bastion.vault import Vault

BOOK = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\n')


def _state_bytes(vault: Vault) -> list[int]:
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_entries.c.data).order_by(audit_entries.c.idx)).scalars()
        return [len(bytes(d)) for d in rows if STATE_ACTION.encode() in bytes(d)]


def test_n_blocks_log_linear_bytes_and_restore_from_the_chain(vault: Vault) -> None:
    n = 40
    responder = Responder(vault=vault, playbook=BOOK, mode="auto")
    for i in range(n):  # one respond call (one save) per spraying address, as --watch sees them
        f = Finding("r1", "t", (), "high", "-", f"2001:db8:77:{i:x}::1", 0.0, 1.0, (), 1, f"k{i}")
        assert [r.status for r in responder.respond([f])] == ["done"]
    sizes = _state_bytes(vault)
    state = load_verified(state_path(vault.settings.home), vault.signer)
    assert len(state.blocked_clients) == n and len(sizes) >= n
    # without the change records: every save logs every block so far
    entry = len(json.dumps({"x": dict(next(iter(state.blocked_clients.values())))}))
    full_total = sum(k * entry for k in range(1, n + 1))
    assert sum(sizes) < full_total / 3, (sum(sizes), full_total)
    assert max(sizes) < (n + 5) * entry  # no record is larger than one full state
    # the record every reader uses is the folded chain, verified, and a restore rebuilds every block
    logged = LoggedState(vault.engine).latest_verified(vault.signer)
    assert logged is not None and not logged.get("incomplete")
    assert int(logged["serial"]) == state.serial
    again = restored(logged)
    assert {s: dict(getattr(again, s)) for s in SECTIONS} == {s: dict(getattr(state, s)) for s in SECTIONS}
    entries = vault.audit.entries()
    assert logged_state(entries) == logged  # the same fold from the verified entries (log verify)


def test_expired_entries_are_dropped_on_save(vault: Vault) -> None:
    path = state_path(vault.settings.home)
    now = time.time()
    state = ResponseState().with_entry("blocked_clients", "192.0.2.1", {"until": now - 1})
    state = state.with_entry("blocked_clients", "192.0.2.2", {"until": now + 3600})
    state = state.with_entry("blocked_identities", "mallory", {"finding": "k"})
    saved = save(path, state, vault.signer, now=now)
    assert set(saved.blocked_clients) == {"192.0.2.2"} and set(saved.blocked_identities) == {"mallory"}
    later = save(path, saved, vault.signer, now=now + 7200)
    assert later.blocked_clients == {} and set(later.blocked_identities) == {"mallory"}
    assert load_verified(path, vault.signer) == later
