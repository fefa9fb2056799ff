"""Commitments in the audit log and signed ownership reports: build, verify, and every tampering caught."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import Ed25519Signer
from bastion.errors import AccessDenied, IntegrityError, InvalidInput
from bastion.vault import init_project, open_vault
from bastion.watermark import (
    OwnershipReport,
    adapter_for,
    build_report,
    home_records,
    log_commitment,
    make_record,
    make_trigger_set,
    spec_for_dataset,
    verify_report,
    verify_triggers,
)

from .conftest import KEY, OTHER_KEY


@pytest.fixture
def vault(tmp_path: Path):
    v = init_project(home=tmp_path / "home", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[])
    yield v
    v.close()


def test_commitment_is_logged_and_the_report_verifies(vault, digits, watermarked_model, tmp_path) -> None:
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
    record = log_commitment(vault, make_record(ts, target="digits-model"))
    assert record.audit_index is not None
    entry = vault.log_entries(start=record.audit_index, limit=1)[0]
    assert entry.action == "watermark:embed" and entry.details["commitment"] == record.commitment
    assert KEY.secret.hex() not in str(entry.details)
    assert home_records(vault.settings.home, key_id=KEY.key_id) == [record]
    vault.log_verify()

    result = verify_triggers(
        model=adapter_for(watermarked_model.module, ts.spec), trigger_set=ts, commitment=record.commitment
    )
    report = build_report(vault=vault, record=record, verification=result, suspect="stolen.example/digits")
    loaded = OwnershipReport.load(report.save(tmp_path / "report.json"))
    check = verify_report(loaded, public_key_pem=vault.signer.public_key_pem(), key=KEY)
    assert check.verdict == "owned" and check.trusted_key and check.key_opened
    assert check.audit_index == record.audit_index and check.p_value < 1e-6
    assert not verify_report(loaded).trusted_key  # embedded key: valid but self-asserted
    with pytest.raises(InvalidInput, match="wrong watermark key"):
        verify_report(loaded, key=OTHER_KEY)

    other = Ed25519Signer.generate().public_key_pem()
    with pytest.raises(IntegrityError):
        verify_report(loaded, public_key_pem=other)
    for path, value in [
        (("verification", "p_value"), 1e-30),
        (("verification", "verdict"), "not_detected"),
        (("suspect",), "someone-else"),
        (("record", "commitment"), "0" * 64),
        (("audit", "entry", "timestamp"), "2020-01-01T00:00:00+00:00"),
    ]:
        body = copy.deepcopy(dict(loaded.body))
        node = body
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        with pytest.raises(IntegrityError):
            verify_report(OwnershipReport(body=body, signature=loaded.signature))


def test_a_report_signed_over_a_forged_log_entry_fails(vault, digits) -> None:
    """Even the key holder cannot back-date: the entry must be in the signed tree."""
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
    record = log_commitment(vault, make_record(ts))
    result = verify_triggers(
        model=adapter_for(_constant(), ts.spec), trigger_set=ts, commitment=record.commitment
    )
    report = build_report(vault=vault, record=record, verification=result, suspect="x")
    body = copy.deepcopy(dict(report.body))
    body["audit"]["entry"]["timestamp"] = "2001-01-01T00:00:00+00:00"
    from bastion.store.auditlog import canonical_json

    resigned = OwnershipReport(body=body, signature=vault.signer.sign(canonical_json(body)))
    with pytest.raises(IntegrityError, match="inclusion proof"):
        verify_report(resigned)


def test_reports_need_a_logged_commitment_and_log_read(vault, digits, tmp_path) -> None:
    ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
    unlogged = make_record(ts)
    result = verify_triggers(model=adapter_for(_constant(), ts.spec), trigger_set=ts)
    with pytest.raises(InvalidInput, match="never written"):
        build_report(vault=vault, record=unlogged, verification=result, suspect="x")
    _, token = vault.create_token(name="dana", role="deployer")
    deployer = open_vault(home=vault.settings.home, passphrase="pw", token=token, inspectors=[])
    try:
        with pytest.raises(AccessDenied):
            log_commitment(deployer, unlogged)
    finally:
        deployer.close()


def _constant():
    import torch

    module = torch.nn.Linear(64, 10)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.copy_(torch.arange(10.0))
    return module
