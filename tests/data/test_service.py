"""Data operations inside a project: permissions, wrapped data keys, catalog, lineage, audit, push."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.crypto.kdf import KdfParams
from bastion.data import service
from bastion.data.catalog import catalog_entries, data_keys, scope_keys
from bastion.data.synth import COLUMNS, generate_table
from bastion.errors import AccessDenied, CryptoError, NotFound
from bastion.store.lineage import REGISTRY_NAMESPACE, LineageDataset, lineage_graph, list_events
from bastion.vault import Vault, init_project, open_vault

PASSPHRASE = "correct horse battery staple"


def _no_pickles(path: Path) -> None:
    """A real inspector for the push seam (the scanner's is tested in tests/scan)."""
    assert path.exists()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def vault(home: Path) -> Iterator[Vault]:
    v = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[_no_pickles])
    yield v
    v.close()


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, object]:
    table = generate_table(rows=120, seed=31)
    return table.write_csv(tmp_path / "raw.csv"), table


def test_scan_records_catalog_lineage_and_audit(vault: Vault, raw) -> None:
    path, _ = raw
    report = service.scan(vault, path=path, use_presidio=False)
    entries = {e["column_name"]: e for e in catalog_entries(vault.engine, dataset=report.path)}
    assert entries["email"]["label"] == "pii" and entries["api_token"]["label"] == "secret"
    assert entries["zip"]["quasi_identifier"] and entries["email"]["action"] == "tokenize"
    (event,) = list_events(vault.engine, job="data.scan")
    assert event.inputs[0].digest == report.digest
    last = vault.audit.entries()[-1]
    assert (last.action, last.outcome) == ("data:scan", "ok")


def test_protect_push_lineage_and_reveal(vault: Vault, home: Path, raw, tmp_path: Path) -> None:
    path, table = raw
    outcome = service.protect(
        vault, path=path, out=tmp_path / "prot.csv", push="customers", use_presidio=False
    )
    assert outcome.pushed is not None and outcome.pushed.name == "customers"
    text = (tmp_path / "prot.csv").read_text()
    assert not [v for v in table.pii_values if v in text]
    # Lineage: registry version -> push -> protected file -> protect -> raw source.
    graph = lineage_graph(vault.engine, root=LineageDataset(REGISTRY_NAMESPACE, "customers:1"))
    assert [e.job_name for e in graph.events] == ["registry.push", "data.protect"]
    assert [s.name for s in graph.sources] == [str(path.resolve())]
    # The data key is stored wrapped: the table never holds the DEK, and the key ring unwraps it.
    with vault.engine.connect() as conn:
        wrapped = conn.execute(sa.select(data_keys.c.wrapped)).scalar_one()
    keys = scope_keys(vault.engine, vault.keys, scope="default", env="dev", create=False)
    token = next(v for v in text.splitlines()[1].split(",") if v.startswith("tok_"))
    assert keys.reveal(token) in table.rows[0]
    assert keys.reveal(token) not in wrapped
    result = service.reveal(vault, scope="default", tokens=[token])
    assert result.values[0] == table.rows[0][COLUMNS.index("full_name")]
    entry = vault.audit.entries()[-1]
    assert (entry.action, entry.outcome, entry.details.get("count")) == ("data:reveal", "ok", 1)
    assert result.values[0] not in json.dumps([e.to_dict() for e in vault.audit.entries()])


def test_reveal_needs_the_permission_and_denials_are_logged(
    vault: Vault, home: Path, raw, tmp_path: Path
) -> None:
    path, _ = raw
    service.protect(vault, path=path, out=tmp_path / "prot.csv", use_presidio=False)
    token = next(
        v for v in (tmp_path / "prot.csv").read_text().splitlines()[1].split(",") if v.startswith("tok_")
    )
    _, ds_token = vault.create_token(name="dana", role="data-scientist")
    other = open_vault(home=home, passphrase=PASSPHRASE, token=ds_token, inspectors=[_no_pickles])
    try:
        with pytest.raises(AccessDenied):
            service.reveal(other, scope="default", tokens=[token])
        service.scan(other, path=path, use_presidio=False)  # the same identity may scan
    finally:
        other.close()
    denied = [e for e in vault.audit.entries() if e.action == "data:reveal"]
    assert denied and denied[-1].outcome == "denied" and denied[-1].actor == "dana"


def test_reveal_failures_are_opaque_and_logged(vault: Vault, raw, tmp_path: Path) -> None:
    path, _ = raw
    service.protect(vault, path=path, out=tmp_path / "prot.csv", use_presidio=False)
    with pytest.raises(CryptoError):
        service.reveal(vault, scope="default", tokens=["tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
    with pytest.raises(NotFound):
        service.reveal(vault, scope="nope", tokens=["tok_x"])
    assert vault.audit.entries()[-1].outcome == "error"


def test_scopes_give_different_tokens(vault: Vault) -> None:
    a = scope_keys(vault.engine, vault.keys, scope="a", env="dev")
    b = scope_keys(vault.engine, vault.keys, scope="b", env="dev")
    again = scope_keys(vault.engine, vault.keys, scope="a", env="dev")
    assert a.token("x") != b.token("x") and a.token("x") == again.token("x")


def test_project_settings_choose_policy_scope_and_chunks(
    vault: Vault, home: Path, raw, tmp_path: Path
) -> None:
    path, _ = raw
    (home / "policy.toml").write_text('[columns.email]\naction = "hash"\n')
    cfg = home / "bastion.toml"
    cfg.write_text(
        cfg.read_text() + '\n[data]\npolicy = "policy.toml"\ntoken_scope = "cfg"\nchunk_rows = 50\n'
    )
    v = open_vault(home=home, passphrase=PASSPHRASE, inspectors=[_no_pickles])
    try:
        outcome = service.protect(v, path=path, out=tmp_path / "p.csv", use_presidio=False)
    finally:
        v.close()
    assert outcome.result.token_scope == "cfg"
    assert {p.name: p.action.value for p in outcome.result.plan}["email"] == "hash"


def test_fpe_values_reveal_through_the_service(vault: Vault, raw, tmp_path: Path) -> None:
    from bastion.data.policy import policy_from_mapping

    path, table = raw
    pol = policy_from_mapping({"columns": {"card_number": {"action": "fpe"}}})
    service.protect(vault, path=path, out=tmp_path / "f.csv", policy=pol, use_presidio=False)
    header, first = (tmp_path / "f.csv").read_text().splitlines()[:2]
    row = dict(zip(next(csv.reader([header])), next(csv.reader([first])), strict=True))
    original = table.rows[0][COLUMNS.index("card_number")]
    assert row["card_number"] != original and len(row["card_number"]) == len(original)
    result = service.reveal(vault, scope="default", tokens=[row["card_number"]], fpe=True)
    assert result.values == (original,)


def test_jsonl_scan_counts_late_keys(tmp_path: Path) -> None:
    from bastion.data import scan_file

    p = tmp_path / "d.jsonl"
    p.write_text("".join('{"a": 1}\n' for _ in range(5)) + '{"a": 2, "email": "x.y@example.com"}\n')
    report = scan_file(path=p, chunk_rows=2, use_presidio=False)
    col = report.column("email")
    assert col.rows == 6 and col.non_empty == 1 and col.label.value == "pii"
    assert col.entities[0].positions[0][0] == 5
