"""API tokens: random, shown once, stored as salted HMACs, compared in constant time, revocable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bastion.access import TOKEN_PREFIX, AccessControl
from bastion.errors import AccessDenied, AuthenticationFailed, Conflict, InvalidInput, NotFound
from bastion.store.tables import tokens


def test_create_and_authenticate(control: AccessControl) -> None:
    ident, token = control.create_token(name="gw", role="consumer", models=("fraud",))
    assert token.startswith(TOKEN_PREFIX) and len(token) >= 40
    assert control.authenticate(token) == ident
    assert ident.models == ("fraud",)
    with control.engine.connect() as conn:
        rows = conn.execute(sa.select(tokens)).all()
    dump = repr(rows).encode()
    assert (
        token.encode() not in dump and token[16:].encode() not in dump
    )  # only id prefix + salted hash stored
    assert all(len(r.salt) == 16 and len(r.digest) == 32 for r in rows)


def test_two_tokens_never_collide(control: AccessControl) -> None:
    _, a = control.create_token(name="x", role="auditor")
    _, b = control.create_token(name="x", role="auditor")
    assert a != b
    assert control.authenticate(a).name == control.authenticate(b).name == "x"


@pytest.mark.parametrize("bad", ["", "bst_", "nope", "bst_" + "A" * 43, "x" * 500])
def test_bad_tokens_fail_and_are_logged(control: AccessControl, bad: str) -> None:
    before = control.audit.size()
    with pytest.raises(AuthenticationFailed):
        control.authenticate(bad)
    entry = control.audit.entries(start=before)[0]
    assert (entry.action, entry.outcome) == ("auth", "denied")
    assert bad[len(TOKEN_PREFIX) + 12 :] not in entry.target or not bad[16:]


def test_tampered_secret_part_fails(control: AccessControl) -> None:
    _, token = control.create_token(name="x", role="auditor")
    last = token[-1]
    forged = token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(AuthenticationFailed):
        control.authenticate(forged)


def test_revoke_token_and_identity(control: AccessControl) -> None:
    _, t1 = control.create_token(name="eng", role="ml-engineer")
    _, t2 = control.create_token(name="eng", role="ml-engineer")
    control.revoke_token(t1[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 12])
    with pytest.raises(AuthenticationFailed):
        control.authenticate(t1)
    assert control.authenticate(t2).name == "eng"
    control.revoke(name="eng")
    with pytest.raises(AuthenticationFailed):
        control.authenticate(t2)
    with pytest.raises(NotFound):
        control.revoke_token("nonexistent00")
    assert [t.revoked for t in control.list_tokens()] == [True, True]


def test_grants_and_scopes(control: AccessControl) -> None:
    with pytest.raises(InvalidInput):
        control.create_token(name="c", role="consumer")  # a consumer needs explicit models
    with pytest.raises(InvalidInput):
        control.create_token(name="ds", role="data-scientist", envs=("prod",))  # never prod
    with pytest.raises(InvalidInput):
        control.create_token(name="r", role="root")
    ident = control.grant(name="dep", role="deployer", models=("fraud",))
    assert ident.envs == ("prod",) and ident.models == ("fraud",)
    ident = control.grant(name="dep", models=("churn",))
    assert ident.models == ("fraud", "churn")
    with pytest.raises(Conflict):
        control.grant(name="dep", role="admin")
    ident = control.revoke(name="dep", models=("fraud",))
    assert ident is not None and ident.models == ("churn",)
    assert {i.name for i in control.list_identities()} == {"owner", "dep"}
    with pytest.raises(InvalidInput):
        control.revoke(name="owner")


def test_management_needs_admin(control: AccessControl) -> None:
    ident, _ = control.create_token(name="eng", role="ml-engineer")
    as_eng = AccessControl(control.engine, control.audit, actor=ident)
    for call in (
        lambda: as_eng.create_token(name="x", role="admin"),
        lambda: as_eng.grant(name="eng", models=("*",)),
        lambda: as_eng.revoke(name="owner", models=("*",)),
        lambda: as_eng.list_tokens(),
        lambda: as_eng.list_identities(),
        lambda: as_eng.revoke_token("whatever0000"),
    ):
        before = control.audit.size()
        with pytest.raises(AccessDenied):
            call()
        assert control.audit.entries(start=before)[0].outcome == "denied"
