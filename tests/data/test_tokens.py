"""AES-SIV tokens, FF1 on values, keyed hashing, masking and generalization, and policy validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.data import entities as E
from bastion.data.entities import Action, Label
from bastion.data.policy import Policy, load_policy, policy_from_mapping
from bastion.data.tokens import TOKEN_RE, ScopeKeys
from bastion.data.transforms import generalize, mask, replace_spans
from bastion.errors import CryptoError, InvalidInput

DEK = bytes(range(32))


def test_tokens_are_deterministic_per_scope_and_reversible() -> None:
    a, b = ScopeKeys(DEK, scope="crm"), ScopeKeys(DEK, scope="crm")
    tok = a.token("jane.doe@example.org")
    assert tok == b.token("jane.doe@example.org")  # joins across files keep working
    assert TOKEN_RE.fullmatch(tok)
    assert "jane" not in tok
    assert b.reveal(tok) == "jane.doe@example.org"
    assert a.token("jane.doe@example.org ") != tok


def test_other_scope_or_key_cannot_reveal() -> None:
    tok = ScopeKeys(DEK, scope="crm").token("078-05-1120")
    assert ScopeKeys(DEK, scope="hr").token("078-05-1120") != tok
    with pytest.raises(CryptoError):
        ScopeKeys(DEK, scope="hr").reveal(tok)
    with pytest.raises(CryptoError):
        ScopeKeys(os.urandom(32), scope="crm").reveal(tok)


@pytest.mark.parametrize(
    "edit", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t[:-4], lambda t: "x" + t]
)
def test_tampered_tokens_fail_with_one_opaque_error(edit) -> None:
    keys = ScopeKeys(DEK, scope="crm")
    with pytest.raises(CryptoError) as info:
        keys.reveal(edit(keys.token("secret value")))
    assert "secret value" not in str(info.value)


def test_fpe_keeps_format_and_reverses() -> None:
    keys = ScopeKeys(DEK, scope="crm")
    for value in ("4111-1111-1111-1111", "078-05-1120", "+1 (212) 555-0143"):
        enc = keys.fpe(value)
        assert enc != value
        assert [c.isdigit() for c in enc] == [c.isdigit() for c in value]
        assert [c for c in enc if not c.isdigit()] == [c for c in value if not c.isdigit()]
        assert keys.fpe_reveal(enc) == value
    with pytest.raises(InvalidInput):
        keys.fpe("12-34")  # FF1's minimum domain (10^6) is enforced


def test_hmac_is_keyed() -> None:
    assert ScopeKeys(DEK, scope="a").hmac("x") == ScopeKeys(DEK, scope="b").hmac("x")
    assert ScopeKeys(DEK, scope="a").hmac("x") != ScopeKeys(os.urandom(32), scope="a").hmac("x")


def test_mask_and_generalize() -> None:
    assert mask("4111 1111 1111 1234") == "**** **** **** 1234"
    assert mask("abc") == "***"
    policy = Policy()
    assert generalize("1984-03-12", entity=E.DATE_OF_BIRTH, policy=policy) == "1984-03"
    assert generalize("03/12/1984", entity=E.DATE, policy=policy) == "1984-03"
    assert generalize("02139", entity=E.ZIP_CODE, policy=policy) == "021**"
    assert generalize("37", entity=E.AGE, policy=policy) == "30-39"
    assert generalize("not a date", entity=E.DATE, policy=policy) == "*"
    year = policy_from_mapping({"options": {"date_granularity": "year", "age_band": 5}})
    assert generalize("1984-03-12", entity=E.DATE, policy=year) == "1984"
    assert generalize("37", entity=E.AGE, policy=year) == "35-39"


def test_replace_spans() -> None:
    out = replace_spans("call 555 now", [(5, 8, E.PHONE)], lambda t, e: f"<{e}>")
    assert out == "call <PHONE_NUMBER> now"


def test_policy_defaults_and_overrides(tmp_path: Path) -> None:
    default = load_policy()
    assert default.action_for(column="x", label=Label.pii, quasi_identifier=False) is Action.tokenize
    assert default.action_for(column="x", label=Label.secret, quasi_identifier=False) is Action.drop
    assert (
        default.action_for(column="x", label=Label.confidential, quasi_identifier=True) is Action.generalize
    )
    path = tmp_path / "p.toml"
    path.write_text(
        '[defaults]\npii = "mask"\n[options]\ntoken_scope = "crm"\n[columns.card]\naction = "fpe"\n'
        '[columns.city]\nlabel = "public"\nquasi_identifier = false\n'
    )
    pol = load_policy(path)
    assert pol.token_scope == "crm"
    assert pol.action_for(column="card", label=Label.pii, quasi_identifier=False) is Action.fpe
    assert pol.action_for(column="email", label=Label.pii, quasi_identifier=False) is Action.mask


@pytest.mark.parametrize(
    "doc",
    [
        {"default": {}},
        {"defaults": {"pii": "encrypt"}},
        {"defaults": {"restricted": "keep"}},
        {"options": {"scope": "x"}},
        {"options": {"zip_digits": 9}},
        {"options": {"date_granularity": "day"}},
        {"columns": {"a": {"action": "keep", "colour": "red"}}},
        {"columns": {"a": {"label": "top-secret"}}},
        {"columns": {"a": {"quasi_identifier": "yes"}}},
    ],
)
def test_policy_rejects_unknown_or_invalid_settings(doc: dict) -> None:
    with pytest.raises(InvalidInput):
        policy_from_mapping(doc)


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults\n")
    with pytest.raises(InvalidInput):
        load_policy(bad)
