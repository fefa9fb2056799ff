"""Issue 11 item 4, registry side: a database writer without keys cannot roll back or relabel versions.

Each edit from the issue is made directly in the database; every read that would grant something on the
edited state (resolve ``NAME``/``NAME@ENV``, show, pull, list, annotate, promote) raises IntegrityError
(exit 1 in the CLI). The owner's migration step (``access seal --yes``) is what would accept the edit, which
measures that the seals, not some other check, refuse it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.cli import run
from bastion.errors import IntegrityError
from bastion.vault import Vault


def _sql(vault: Vault, statement: str, **params: object) -> None:
    with vault.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _vid(vault: Vault, version: int) -> int:
    with vault.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT v.id FROM artifact_versions v WHERE v.version = :v"), {"v": version}
            ).scalar_one()
        )


@pytest.fixture
def fraud(vault: Vault, artifact: Path) -> Vault:
    """fraud:1 and fraud:2 both promoted to prod (so fraud@prod is 2), fraud:3 pushed to dev only."""
    for _ in range(3):
        vault.push(artifact, name="fraud")
    for v in (1, 2):
        vault.promote(f"fraud:{v}", to="staging")
        vault.promote(f"fraud:{v}", to="prod")
    assert vault.show("fraud@prod").version == 2 and vault.show("fraud").version == 3
    return vault


def test_deleting_a_promotion_rolls_nothing_back(fraud: Vault) -> None:
    _sql(fraud, "DELETE FROM wrapped_keys WHERE version_id = :i AND env = 'prod'", i=_vid(fraud, 2))
    with pytest.raises(IntegrityError, match="pointers"):
        fraud.show("fraud@prod")  # would otherwise silently resolve to fraud:1
    with pytest.raises(IntegrityError, match="pointers"):
        fraud.pull("fraud@prod", out=fraud.settings.home.parent / "out")
    with pytest.raises(IntegrityError):
        fraud.list()


def test_deleting_the_newest_version_is_detected(fraud: Vault) -> None:
    vid = _vid(fraud, 3)
    for table in ("artifact_files", "wrapped_keys", "version_annotations"):
        _sql(fraud, f"DELETE FROM {table} WHERE version_id = :i", i=vid)
    _sql(fraud, "DELETE FROM artifact_versions WHERE id = :i", i=vid)
    with pytest.raises(IntegrityError, match="pointers"):
        fraud.show("fraud")  # would otherwise be fraud:2
    with pytest.raises(IntegrityError, match="pointers"):
        fraud.show("fraud:1")  # the name's whole pointer set is refused, not just NAME


def test_relabelling_a_wrap_row_is_detected(fraud: Vault) -> None:
    _sql(
        fraud,
        "UPDATE wrapped_keys SET env = 'prod' "
        "WHERE id = (SELECT max(id) FROM wrapped_keys WHERE version_id = :i)",
        i=_vid(fraud, 3),
    )
    with pytest.raises(IntegrityError):
        fraud.show("fraud@prod")


def test_created_by_edit_is_detected(fraud: Vault, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    _sql(fraud, "UPDATE artifact_versions SET created_by = 'mallory' WHERE id = :i", i=_vid(fraud, 2))
    with pytest.raises(IntegrityError, match=r"fraud:2's row"):
        fraud.show("fraud:2")
    fraud.show("fraud:1")  # other versions are unaffected
    monkeypatch.setenv("BASTION_HOME", str(fraud.settings.home))
    capsys.readouterr()
    assert run(["registry", "show", "fraud@prod"]) == 1  # the CLI: exit 1, one line
    err = capsys.readouterr().err
    assert "fraud:2's row" in err and "Traceback" not in err


def test_forged_or_deleted_annotations_are_detected(fraud: Vault) -> None:
    fraud.annotate("fraud:2", namespace="audit", data={"passed": False})
    assert fraud.show("fraud:2").annotations[0].data == {"passed": False}  # legit annotations stay readable
    _sql(fraud, "UPDATE version_annotations SET data_json = '{\"passed\": true}'")
    with pytest.raises(IntegrityError, match="annotations"):
        fraud.annotations("fraud:2")
    _sql(fraud, "DELETE FROM version_annotations")
    with pytest.raises(IntegrityError, match="annotations"):
        fraud.show("fraud:2")


def test_the_owner_seal_step_is_what_would_accept_an_edit(fraud: Vault) -> None:
    """Without the seals (i.e. once the owner blesses the rows) the rollback would take effect."""
    _sql(fraud, "DELETE FROM wrapped_keys WHERE version_id = :i AND env = 'prod'", i=_vid(fraud, 2))
    assert "fraud" in fraud.unsealed_state()
    assert fraud.seal_state() == ["fraud"]
    assert fraud.show("fraud@prod").version == 1  # the rolled-back pointer, now accepted by the owner
    assert os.environ.get("BASTION_TOKEN") is None


def test_replaying_an_older_sealed_state_is_caught_by_the_log(fraud: Vault, artifact: Path) -> None:
    """The adaptive DB writer: restore an older, validly sealed pointer set (rows and seal together)."""
    with fraud.engine.connect() as conn:
        old_seal = conn.execute(
            sa.text("SELECT mac FROM sealed_state WHERE kind = 'pointers' AND key = 'fraud'")
        ).scalar_one()
    fraud.push(artifact, name="fraud")  # fraud:4, in dev
    fraud.promote("fraud:3", to="staging")
    _sql(fraud, "DELETE FROM wrapped_keys WHERE version_id = :i AND env = 'staging'", i=_vid(fraud, 3))
    vid4 = _vid(fraud, 4)
    for table in ("artifact_files", "wrapped_keys", "version_annotations"):
        _sql(fraud, f"DELETE FROM {table} WHERE version_id = :i", i=vid4)
    _sql(fraud, "DELETE FROM artifact_versions WHERE id = :i", i=vid4)
    _sql(fraud, "UPDATE sealed_state SET mac = :m WHERE kind = 'pointers' AND key = 'fraud'", m=old_seal)
    assert fraud.show("fraud").version == 3  # the seal alone accepts the replayed state ...
    with pytest.raises(IntegrityError, match=r"\(rollback\)"):
        fraud.log_verify()  # ... the witnessed log does not
