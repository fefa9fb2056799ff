"""Canonical JSON in one place (issue 13 item 4): RFC 8785 for what is signed, MACed or hashed; homes written
before the switch (audit-log leaves, key-ring MACs, ownership reports) still verify; tampering still fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.crypto import keyring as keyring_mod
from bastion.crypto.canonical import canonical_forms, canonical_json, legacy_json
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keyring import LocalKeyRing
from bastion.crypto.seal import RowSealer
from bastion.crypto.signing import Ed25519Signer
from bastion.errors import IntegrityError
from bastion.store import logrecords as logrecords_mod
from bastion.store.auditlog import AuditLog, tree_head_data
from bastion.store.db import ensure_tables, open_engine
from bastion.store.tables import audit_entries

# RFC 8785 section 3.2.2 / appendix (the published example), as bytes.
RFC_INPUT = (
    '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],'
    '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}'
)
RFC_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode()


def test_rfc8785_known_answer() -> None:
    assert canonical_json(json.loads(RFC_INPUT)) == RFC_OUTPUT


@pytest.mark.parametrize(
    ("value", "rfc", "legacy"),
    [
        ({"b": 1.0, "a": 1e-05}, b'{"a":0.00001,"b":1}', b'{"a":1e-05,"b":1.0}'),
        ({"s": "é"}, '{"s":"é"}'.encode(), '{"s":"é"}'.encode()),
    ],
)
def test_forms_rfc_first_then_legacy(value: object, rfc: bytes, legacy: bytes) -> None:
    assert canonical_json(value) == rfc and legacy_json(value) == legacy
    assert canonical_forms(value) == tuple(dict.fromkeys((rfc, legacy)))


def test_outside_i_json_only_the_legacy_form() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValueError):
        canonical_json({"x": 2**60})
    assert canonical_forms({"x": 2**60}) == (b'{"x":1152921504606846976}',)


def test_tree_head_bytes_did_not_change() -> None:
    """Heads hold only ASCII strings and small integers: both encodings are the same bytes, so every
    head signed before the switch verifies unchanged."""
    data = tree_head_data(2**40, bytes(range(32)), "2026-12-05T03:00:00.123456+00:00")
    assert data == legacy_json(json.loads(data)) == legacy_json(json.loads(data), ascii=True)


def test_row_seal_is_rfc8785() -> None:
    sealer = RowSealer(b"k" * 32)
    import hmac

    state = {"b": [1, 2], "a": "é"}
    expected = hmac.new(b"k" * 32, canonical_json({"kind": "x", "key": "y", "state": state}), "sha256")
    assert sealer.seal("x", "y", state) == expected.digest()


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    engine = open_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine)
    return AuditLog(engine, Ed25519Signer.generate(), witness_path=tmp_path / "head.json")


DETAILS = {"eps": 1.0, "delta": 1e-05, "who": "Zoë", "big": 2**60}


def test_audit_log_written_before_the_switch_still_verifies(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:  # a home written by the pre-RFC code
        m.setattr(logrecords_mod, "leaf_encoding", legacy_json)
        log.append(actor="a", action="x", target="t", outcome="ok", details={k: DETAILS[k] for k in DETAILS})
        log.append(actor="a", action="x", target="t", outcome="ok", details={"eps": 2.0})
    log.append(actor="a", action="x", target="t", outcome="ok", details={"eps": 3.0, "who": "Zoë"})
    log.append(actor="a", action="x", target="t", outcome="ok", details={"nan": float("nan")})
    with log.engine.connect() as conn:
        stored = [
            bytes(d)
            for d in conn.execute(sa.select(audit_entries.c.data).order_by(audit_entries.c.idx)).scalars()
        ]
    assert b'"eps":2.0' in stored[1] and b'"eps":3' in stored[2] and b'"eps":3.0' not in stored[2]
    assert b"NaN" in stored[3]  # outside I-JSON: the legacy encoding, still appended
    assert log.verify().size == 4
    for i in range(4):
        log.prove_inclusion(i).verify()
    # a third encoding of the same entry (not one the log ever wrote) is still tampering
    spaced = json.dumps(json.loads(stored[2]), sort_keys=True).encode()
    leaf = hashlib.sha256(b"\x00" + spaced).digest()
    with log.engine.begin() as conn:
        conn.execute(
            sa.update(audit_entries).where(audit_entries.c.idx == 2).values(data=spaced, leaf_hash=leaf)
        )
    with pytest.raises(IntegrityError):
        log.verify()


def test_key_ring_maced_before_the_switch_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyring.json"
    fast = KdfParams(time_cost=1, memory_kib=256)

    def legacy_mac(self: object, doc: dict[str, object]) -> bytes:
        import hmac

        body = {k: v for k, v in doc.items() if k != "mac"}
        return hmac.new(self.mac_key, legacy_json(body, ascii=True), "sha256").digest()  # type: ignore[attr-defined]

    with monkeypatch.context() as m:
        m.setattr(keyring_mod._Secrets, "mac", legacy_mac)
        old = LocalKeyRing.create(path, "a passphrase for tests", kdf=fast)
        wrapped = old.wrap(env="dev", dek=b"\x01" * 32, context="c")
    ring = LocalKeyRing.open(path, "a passphrase for tests")
    assert ring.unwrap(wrapped, context="c") == b"\x01" * 32
    ring.rotate(env="dev")  # the next write re-MACs in RFC 8785
    assert LocalKeyRing.open(path, "a passphrase for tests").unwrap(wrapped, context="c") == b"\x01" * 32
    doc = json.loads(path.read_bytes())
    doc["envs"]["dev"]["keks"][0]["version"] = 7  # tampering still fails under either encoding
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        LocalKeyRing.open(path, "a passphrase for tests")
