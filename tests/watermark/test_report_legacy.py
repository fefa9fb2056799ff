"""Ownership reports and audit entries signed before canonical JSON moved to RFC 8785 (issue 13 item 4) still
verify; a report is not accepted under an encoding nobody signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.crypto.canonical import canonical_forms, legacy_json
from bastion.crypto.kdf import KdfParams
from bastion.errors import IntegrityError
from bastion.store import logrecords
from bastion.vault import init_project
from bastion.watermark import (
    OwnershipReport,
    adapter_for,
    build_report,
    log_commitment,
    make_record,
    make_trigger_set,
    spec_for_dataset,
    verify_report,
    verify_triggers,
)
from bastion.watermark import report as report_mod

from .conftest import KEY


def test_a_pre_rfc8785_report_still_verifies(digits, watermarked_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault = init_project(home=tmp_path / "home", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[])
    try:
        ts = make_trigger_set(key=KEY, spec=spec_for_dataset(digits))
        result = verify_triggers(model=adapter_for(watermarked_model.module, ts.spec), trigger_set=ts)
        with pytest.MonkeyPatch.context() as m:  # what bastion wrote before the switch
            m.setattr(logrecords, "leaf_encoding", legacy_json)
            m.setattr(report_mod, "canonical_json", legacy_json)
            record = log_commitment(vault, make_record(ts, target="digits-model"))
            report = build_report(vault=vault, record=record, verification=result, suspect="x.example/m")
        loaded = OwnershipReport.load(report.save(tmp_path / "report.json"))
        assert (
            len(canonical_forms(dict(loaded.body))) == 2
        )  # the two encodings differ: the legacy path is used
        check = verify_report(loaded, public_key_pem=vault.signer.public_key_pem(), key=KEY)
        assert check.verdict == "owned" and check.trusted_key
        vault.log_verify()
        body = dict(loaded.body)
        body["suspect"] = "someone-else"
        with pytest.raises(IntegrityError):
            verify_report(OwnershipReport(body=body, signature=loaded.signature))
    finally:
        vault.close()
