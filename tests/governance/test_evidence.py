"""The gate counts only evidence bastion produced (issue 11, F2: an ml-engineer self-certified every rule).

The attacker is an ml-engineer token (push, annotate audit/watermark, promote): everything here goes through
the same ``Vault`` methods the server's routes call (``annotate``, ``gate_promotion`` + ``promote``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from bastion.errors import AccessDenied, PolicyViolation
from bastion.governance.evidence import attest_audit, log_evidence
from bastion.governance.inventory import inventory
from bastion.governance.policy import check_versions, gate_promotion
from bastion.vault import open_vault

from .conftest import audit_note, refuse_pickles


def _as(project: Any, role: str) -> Any:
    _, token = project.vault.create_token(name=f"{role}-1", role=role)
    return open_vault(
        home=project.home,
        passphrase=os.environ["BASTION_PASSPHRASE"],
        token=token,
        inspectors=[refuse_pickles],
    )


def _self_certified(project: Any, mle: Any) -> str:
    d = project.tmp / "fraudmodel"
    d.mkdir()
    (d / "config.json").write_text('{"w":[1,2,3]}')
    digest = hashlib.sha256(project.clean_csv.read_bytes()).hexdigest()
    meta = {"private": True, "epsilon": 1.0, "delta": 1e-5, "source_digest": digest, "dataset_digest": digest}
    ref = str(mle.push(d, name="fraud", env="dev", metadata=meta).ref)
    with pytest.raises(AccessDenied, match="reserved"):
        mle.annotate(ref, namespace="scan", data={"clean": True})
    mle.annotate(ref, namespace="audit", data=audit_note(robust=0.95, tpr=0.0, grade="A"))
    mle.annotate(ref, namespace="watermark", data={"commitment": "deadbeef"})
    project.touch_threat_model()
    return ref


def test_self_written_evidence_does_not_promote(project: Any) -> None:
    mle = _as(project, "ml-engineer")
    try:
        ref = _self_certified(project, mle)
        report = check_versions(vault=mle, refs=[ref], env="prod")
        failed = {i.rule.id for i in report.issues}
        # scan is real (the vault inspected this clean push); everything else was self-written
        assert failed == {"BST-P003", "BST-P004", "BST-P005", "BST-P006", "BST-P007"}
        with pytest.raises(PolicyViolation):
            gate_promotion(vault=mle, ref=ref, to="prod")
        assert mle.show(ref).env == "dev"
        (e,) = inventory(vault=mle, refs=[ref])
        assert (e.epsilon, e.watermark, e.audit_grade, e.lineage_roots) == (None, None, None, ())
    finally:
        mle.close()


def test_scan_namespace_is_reserved_even_for_the_owner(project: Any) -> None:
    ref = project.push_model("fraud", allow_unsafe=True)
    with pytest.raises(AccessDenied, match="reserved"):
        project.vault.annotate(ref, namespace="scan", data={"clean": True})
    (e,) = inventory(vault=project.vault, refs=[ref])
    assert e.scan == "unsafe-override"


def test_audit_attestation_is_bound_to_version_and_content(project: Any) -> None:
    one = project.push_model("fraud", audit=audit_note(robust=0.1))
    two = project.push_model("fraud", audit=audit_note(robust=0.1))
    good = attest_audit(project.vault, one, audit_note(robust=0.9))
    project.vault.annotate(two, namespace="audit", data=good)  # copied from another version
    edited = {**good, "grade": "A", "families": audit_note(robust=0.99)["families"]}
    project.vault.annotate(one, namespace="audit", data=edited)  # its figures edited after attestation
    entries = {e.ref: e for e in inventory(vault=project.vault, refs=[one, two])}
    assert entries[one].robust_accuracy == 0.1 and entries[two].robust_accuracy == 0.1
    project.vault.annotate(one, namespace="audit", data=good)
    (e,) = inventory(vault=project.vault, refs=[one])
    assert e.robust_accuracy == 0.9


def test_watermark_counts_only_a_logged_commitment(project: Any) -> None:
    ref = project.push_model("fraud", watermark=False)
    project.vault.annotate(ref, namespace="watermark", data={"commitment": "ab" * 32})
    assert inventory(vault=project.vault, refs=[ref])[0].watermark is None
    logged = project.watermark(ref)
    assert inventory(vault=project.vault, refs=[ref])[0].watermark == logged


def test_epsilon_comes_from_the_training_run_and_the_ledger(project: Any) -> None:
    ref = project.push_model("fraud", epsilon=20.0)
    (e,) = inventory(vault=project.vault, refs=[ref])
    assert e.epsilon == 20.0  # the recorded ε, not a value the pusher could choose
    # a real ledger spend cited by a model no bastion training run recorded does not count
    spend = project.spend(1.0)
    d = project.tmp / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(os.urandom(64))
    v = project.vault.push(d, name="other", metadata={"private": True, "epsilon": 1.0, "spend_id": spend})
    assert inventory(vault=project.vault, refs=[v.ref])[0].epsilon is None
    ev = log_evidence(project.vault)
    assert spend in ev.settled and spend not in ev.trained


def test_inventory_owner_is_the_pusher_and_the_tag_is_shown_apart(project: Any) -> None:
    d = project.tmp / "tagged"
    d.mkdir()
    (d / "model.safetensors").write_bytes(os.urandom(64))
    v = project.vault.push(d, name="tagged", tags={"owner": "risk-team"})
    (e,) = inventory(vault=project.vault, refs=[v.ref])
    assert (e.owner, e.owner_tag) == ("owner", "risk-team")


def test_classification_edited_in_the_database_is_not_evidence(project: Any) -> None:
    import sqlalchemy as sa

    ref = project.push_model("fraud", data=project.pii_csv)
    failed = {i.rule.id: i.message for i in check_versions(vault=project.vault, refs=[ref]).issues}
    assert "email" in failed["BST-P007"]  # the sealed classification: an unprotected pii column
    with project.vault.engine.begin() as conn:  # a database writer relabels the column
        conn.execute(sa.text("UPDATE data_classifications SET label = 'public' WHERE column_name = 'email'"))
    failed = {i.rule.id: i.message for i in check_versions(vault=project.vault, refs=[ref]).issues}
    assert "changed outside bastion" in failed["BST-P007"]
    with project.vault.engine.begin() as conn:  # or deletes the seal too
        conn.execute(sa.text("DELETE FROM sealed_state WHERE kind = 'classification'"))
    failed = {i.rule.id: i.message for i in check_versions(vault=project.vault, refs=[ref]).issues}
    assert "not sealed" in failed["BST-P007"]
