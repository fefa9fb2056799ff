"""Issue 17 M6: the Audits page shows only audits attested with the home's key ring (as the inventory does),
and a malformed note (anyone with ``audit:run`` can write one) never breaks the page for everyone."""

from __future__ import annotations

import os
from typing import Any

from bastion.ui import data
from bastion.vault import open_vault


def _writer(ui_project: Any) -> Any:
    """A note written through the public API without the audit runner's attestation (what an identity with
    audit:run can write; the owner's vault here, as the version is in prod where the data scientist may not
    read)."""
    return open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"])


def test_an_unattested_note_is_not_shown_as_the_audit(ui: Any, ui_project: Any) -> None:
    make_client, login = ui
    forged = {
        "grade": "A",
        "created": "2026-12-02",
        "families": {"evasion": {"status": "pass", "grade": "A", "metrics": {"robust_accuracy": 0.99}}},
    }
    with _writer(ui_project) as ds:  # the data scientist's own "audit", newer than the real one
        ds.annotate(ui_project.model_ref, namespace="audit", data=forged)
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        notes = owner.annotations(ui_project.model_ref, namespace="audit")
        assert notes[-1].data["grade"] == "A"  # what the page showed before: the newest note, unchecked
        [view] = data.audit_views(owner)
    assert view.grade == "C" and view.unattested == 1
    with make_client(ui_project) as client:
        assert login(client, ui_project.tokens["auditor"]).status_code == 303
        page = client.get("/audits")
    assert page.status_code == 200
    assert 'grade <span class="grade">C</span>' in page.text and "0.99" not in page.text
    assert "1 audit note(s) without this home" in page.text


def test_a_malformed_note_does_not_break_the_page(ui: Any, ui_project: Any) -> None:
    make_client, login = ui
    with _writer(ui_project) as ds:  # unattested and malformed: what an identity with audit:run can write
        ds.annotate(
            ui_project.model_ref, namespace="audit", data={"grade": "B", "families": {"evasion": "x"}}
        )
    with make_client(ui_project) as client:
        assert login(client, ui_project.tokens["auditor"]).status_code == 303
        page = client.get("/audits")
        assert page.status_code == 200 and 'grade <span class="grade">C</span>' in page.text
        assert client.get("/inventory").status_code == 200
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        from bastion.governance.evidence import attest_audit

        bad = attest_audit(
            owner, ui_project.model_ref, {"grade": "B", "families": {"evasion": "x"}, "reasons": 5}
        )
        owner.annotate(
            ui_project.model_ref, namespace="audit", data=bad
        )  # attested (key ring), yet malformed
    with make_client(ui_project) as client:
        assert login(client, ui_project.tokens["auditor"]).status_code == 303
        page = client.get("/audits")  # its shape is validated: shown, never an HTTP 500 for everyone
        assert page.status_code == 200 and 'grade <span class="grade">B</span>' in page.text
