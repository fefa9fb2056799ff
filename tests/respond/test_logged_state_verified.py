"""Issue 17 re-attack F3/F6: the audit log's record of the latest response state is believed only when it
matches the log's signed tree heads.

The attacker writes the home (bastion.db, respond/) without the key ring: editing the ``respond:state`` rows
in the database (to hide the record, or to forge one) must not lift a block, and ``--restore-state`` must
never re-sign a state the log key did not sign into the tree.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bastion.errors import IntegrityError
from bastion.hunt.report import Finding
from bastion.respond import Responder, parse_playbook, state_path
from bastion.respond.gate import ResponseGate
from bastion.store import merkle
from bastion.store.logrecords import AuditEntry
from bastion.store.response_state import STATE_ACTION, LoggedState, logged_state
from bastion.store.tables import audit_entries, tree_heads
from bastion.vault import Vault

BOOK = parse_playbook('[[rule]]\nmatch = ["*"]\nactions = ["block-client"]\n')


def _block(vault: Vault, client: str = "10.1.2.3", key: str = "k1") -> None:
    finding = Finding("r1", "t", (), "high", "mallory", client, 0.0, 1.0, (), 1, key)
    assert {r.status for r in Responder(vault=vault, playbook=BOOK, mode="auto").respond([finding])} == {
        "done"
    }


def _state_rows(vault: Vault) -> list[tuple[int, bytes]]:
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_entries.c.idx, audit_entries.c.data)).all()
    return [(int(i), bytes(d)) for i, d in rows if STATE_ACTION.encode() in bytes(d)]


def _unverified(vault: Vault) -> object:
    """What the record was before the fix: the rows parsed, nothing checked."""
    with vault.engine.connect() as conn:
        data = conn.execute(sa.select(audit_entries.c.data).order_by(audit_entries.c.idx)).scalars()
        return logged_state(AuditEntry.from_leaf(bytes(d)) for d in data)


def _rewrite(vault: Vault, idx: int, data: bytes, *, leaf_too: bool) -> None:
    values: dict[str, bytes] = {"data": data}
    if leaf_too:
        values["leaf_hash"] = merkle.leaf_hash(data)
    with vault.engine.begin() as conn:
        conn.execute(sa.update(audit_entries).where(audit_entries.c.idx == idx).values(**values))


def test_hiding_the_record_in_the_db_lifts_nothing(vault: Vault) -> None:
    _block(vault)
    state_path(vault.settings.home).unlink()
    for idx, data in _state_rows(vault):  # the F3 attack: rename the action, same length
        _rewrite(vault, idx, data.replace(STATE_ACTION.encode(), b"respond:stat_"), leaf_too=False)
    assert _unverified(vault) is None  # unchecked: "no state was ever logged", every block lifted
    with pytest.raises(IntegrityError, match="leaf hash"):
        LoggedState(vault.engine).latest()
    gate = ResponseGate.for_vault(vault, reload_s=0.0)
    assert gate is not None and gate.refuses(client="10.1.2.3") and gate.refuses(client="192.0.2.1")


def test_hiding_the_record_and_its_leaf_hash_is_caught_by_the_signed_root(vault: Vault) -> None:
    _block(vault)
    for idx, data in _state_rows(vault):
        _rewrite(vault, idx, data.replace(STATE_ACTION.encode(), b"respond:stat_"), leaf_too=True)
    assert _unverified(vault) is None
    with pytest.raises(IntegrityError, match="signed head"):
        LoggedState(vault.engine).latest()


def test_a_forged_record_with_recomputed_heads_fails_the_signature(vault: Vault) -> None:
    """The adaptive attacker rewrites the record (no blocks), its leaf hash and every later head's root and
    frontier: only the head signature (the log key) tells; restore must refuse to re-sign it."""
    _block(vault)
    idx, data = _state_rows(vault)[-1]
    obj = json.loads(data)
    obj["details"]["blocked_clients"] = {}
    forged = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    _rewrite(vault, idx, forged, leaf_too=True)
    with vault.engine.begin() as conn:
        leaves = [
            bytes(x)
            for x in conn.execute(
                sa.select(audit_entries.c.leaf_hash).order_by(audit_entries.c.idx)
            ).scalars()
        ]
        frontier: list[bytes] = []
        for i, leaf in enumerate(leaves):
            frontier = merkle.frontier_append(frontier, i, leaf)
            conn.execute(
                sa.update(tree_heads)
                .where(tree_heads.c.size == i + 1)
                .values(root_hash=merkle.frontier_root(frontier), frontier=merkle.pack(frontier))
            )
    assert LoggedState(vault.engine).latest() is not None  # structure alone is consistent again
    with pytest.raises(IntegrityError, match="bad signature"):
        LoggedState(vault.engine).latest_verified(vault.signer)


def test_verified_record_follows_new_saves_and_refuses_a_later_edit(vault: Vault) -> None:
    logged = LoggedState(vault.engine)
    assert logged.latest_verified(vault.signer) is None
    _block(vault)
    first = logged.latest_verified(vault.signer)
    assert first is not None and "10.1.2.3" in first["blocked_clients"]
    _block(vault, client="10.9.9.9", key="k2")
    second = logged.latest_verified(vault.signer)
    assert second is not None and "10.9.9.9" in second["blocked_clients"]
    assert int(second["serial"]) > int(first["serial"])
    idx, data = _state_rows(vault)[-1]
    _rewrite(vault, idx, data.replace(b"10.9.9.9", b"10.9.9.8"), leaf_too=False)
    with pytest.raises(IntegrityError):
        LoggedState(vault.engine).latest_verified(vault.signer)
