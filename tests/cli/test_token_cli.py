"""``bastion token`` and ``bastion access``: a consumer token is printed once and is scoped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.cli import run


def test_token_create_list_revoke(home: Path, capsys, monkeypatch) -> None:
    assert run(["token", "create", "--name", "gw", "--role", "consumer", "--model", "fraud"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("bst_") and "not shown again" in out.err
    assert run(["token", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["identity"] == "gw" and token not in json.dumps(listed)
    # the consumer token cannot use the registry
    monkeypatch.setenv("BASTION_TOKEN", token)
    assert run(["registry", "list"]) == 2
    assert "may not registry:read" in capsys.readouterr().err
    assert run(["token", "create", "--name", "x", "--role", "admin"]) == 2
    monkeypatch.delenv("BASTION_TOKEN")
    assert run(["token", "revoke", listed[0]["id"]]) == 0
    monkeypatch.setenv("BASTION_TOKEN", token)
    assert run(["registry", "list"]) == 2
    assert "invalid API token" in capsys.readouterr().err
    assert (
        run(["token", "create", "--name", "c2", "--role", "consumer"]) == 2
    )  # BASTION_TOKEN revoked: denied


def test_access_grant_revoke_list(home: Path, capsys) -> None:
    assert run(["access", "grant", "ana", "--role", "data-scientist", "--model", "fraud*"]) == 0
    assert run(["access", "grant", "ana", "--env", "prod"]) == 2  # a data-scientist never gets prod
    assert "cannot be granted environment prod" in capsys.readouterr().err
    assert run(["access", "list", "--format", "json"]) == 0
    ana = next(i for i in json.loads(capsys.readouterr().out) if i["name"] == "ana")
    assert ana["models"] == ["fraud*"] and ana["envs"] == ["dev", "staging"]
    assert run(["access", "revoke", "ana", "--env", "staging"]) == 0
    assert run(["access", "list"]) == 0
    assert "envs=dev\n" in capsys.readouterr().out
    assert run(["access", "revoke", "ana"]) == 0
    assert run(["access", "revoke", "ana"]) == 2
    assert run(["access", "grant", "bob", "--role", "wizard"]) == 2


# --- issue 12 items 9, 11, 12 through the CLI ---------------------------------------------------------------


def test_access_revoke_nothing_matched_is_exit_2_and_says_so(home, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(["access", "grant", "eng", "--role", "ml-engineer", "--model", "*"]) == 0
    capsys.readouterr()
    assert run(["access", "revoke", "eng", "--model", "digits"]) == 2
    err = capsys.readouterr().err
    assert "nothing was removed" in err and "scopes removed" not in err
    assert run(["access", "grant", "eng", "--model", "fraud"]) == 0
    capsys.readouterr()
    assert run(["access", "revoke", "eng", "--model", "fraud", "--model", "digits"]) == 0
    out = capsys.readouterr().out
    assert "removed model fraud" in out and "not held, nothing removed for model digits" in out


def test_access_grant_of_a_revoked_name_is_one_line(home, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(["access", "grant", "gone", "--role", "auditor"]) == 0
    assert run(["access", "revoke", "gone"]) == 0
    capsys.readouterr()
    assert run(["access", "grant", "gone", "--role", "auditor"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was revoked" in err[0] and "IntegrityError" not in err[0]


def test_token_create_for_existing_identity_does_not_widen(home, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(["token", "create", "--name", "ci", "--role", "deployer", "--model", "fraud"]) == 0
    capsys.readouterr()
    assert run(["token", "create", "--name", "ci", "--role", "deployer", "--model", "*"]) == 2
    assert "access grant" in capsys.readouterr().err
    assert run(["access", "list", "--format", "json"]) == 0
    ci = next(i for i in json.loads(capsys.readouterr().out) if i["name"] == "ci")
    assert ci["models"] == ["fraud"]


@pytest.mark.parametrize("value", ["", "   ", "not-a-token", "bst_", "bst_zz.secret", "Bearer bst_x"])
def test_empty_or_malformed_token_is_an_error_not_the_owner(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Item 3 of issue 11: a set-but-empty or malformed BASTION_TOKEN never falls back to the owner."""
    monkeypatch.setenv("BASTION_TOKEN", value)
    assert run(["token", "create", "--name", "mallory", "--role", "admin"]) == 2
    err = capsys.readouterr().err
    assert "BASTION_TOKEN" in err and "Traceback" not in err
    assert ("empty" in err) if not value.strip() else ("not a bastion API token" in err)
    if value in ("not-a-token", "bst_zz.secret"):
        assert value not in err  # the value itself is never echoed
    monkeypatch.delenv("BASTION_TOKEN")
    assert run(["token", "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing was minted
