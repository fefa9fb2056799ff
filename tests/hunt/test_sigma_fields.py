"""Issue 17 L4: a Sigma field name with a backtick must not become SQL (``hunt --rules DIR``); a failing
hunting query is one line without the SQL or its bound values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import InvalidInput, ServiceError
from bastion.events import EventStore
from bastion.hunt.sigma import load_rules

INJECTED = (
    "kind`!='') GROUP BY identity, client UNION SELECT name, position, 0, 0, 1 FROM bastion_event_cursors --"
)
RULE = f"""title: Injected
id: 11111111-2222-3333-4444-555555555556
status: test
logsource:
    product: bastion
detection:
    sel:
        "{INJECTED}": x
    condition: sel
level: high
"""


def test_unknown_field_names_are_refused(tmp_path: Path) -> None:
    import sigma.backends.sqlite as backend
    from sigma.collection import SigmaCollection

    # without the check: pySigma's SQLite backend puts the name between backticks, unescaped
    sql = backend.sqliteBackend().convert(SigmaCollection.from_yaml(RULE))[0]
    assert "UNION SELECT name, position" in sql
    (tmp_path / "inj.yml").write_text(RULE)
    with pytest.raises(InvalidInput, match="unknown event field"):
        load_rules(tmp_path)


def test_hunt_cli_refuses_the_rule_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    init_project(
        home=tmp_path / "home", passphrase="correct horse battery staple", kdf=KdfParams.unsafe_fast()
    ).close()
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BASTION_PASSPHRASE", "correct horse battery staple")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "inj.yml").write_text(RULE)
    assert run(["hunt", "--rules", str(rules)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unknown event field" in err and "\n" not in err


def test_a_failing_query_hides_sql_and_values(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    with pytest.raises(ServiceError) as info:
        store.query("SELECT secret FROM bastion_events WHERE identity = :v", {"v": "bst_secret_token"})
    assert "SELECT" not in str(info.value) and "bst_secret_token" not in str(info.value)
    store.close()
