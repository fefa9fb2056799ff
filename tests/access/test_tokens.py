"""API tokens: random, shown once, stored as salted HMACs, compared in constant time, revocable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bastion.access import TOKEN_PREFIX, AccessControl, token_id
from bastion.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
)
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
    control.revoke_token(t1[len(TOKEN_PREFIX) :].split(".")[0])
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
    as_eng = AccessControl(control.engine, control.audit, actor=ident, sealer=control.sealer)
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


# --- issue 12 items 9, 11, 12, 13 ----------------------------------------------------------------------


def test_token_ids_are_independent_of_the_secret(control: AccessControl) -> None:
    """Item 13: the id shown in listings and logs is not a piece of the secret."""
    _, token = control.create_token(name="gw", role="consumer", models=("fraud",))
    tid = token_id(token)
    assert tid is not None and len(tid) == 16
    secret = token.split(".", 1)[1]
    assert tid not in secret and tid not in token[len(TOKEN_PREFIX) + 17 :]
    listed = control.list_tokens()[0].id
    assert listed == tid
    before = control.audit.size()
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(AuthenticationFailed):
        control.authenticate(forged)
    entry = control.audit.entries(start=before)[0]
    assert entry.target == tid and secret[:8] not in repr(entry)
    created = next(e for e in control.audit.entries() if e.action == "token:create")
    assert secret[:8] not in repr(created)


def test_legacy_tokens_keep_working_and_are_never_shown(control: AccessControl) -> None:
    """Old-format tokens (bst_ + 43 chars, id = first 12) authenticate; listings and logs hash their id."""
    import hashlib
    import hmac
    import secrets as pysecrets

    from bastion.store.db import utcnow

    ident, _ = control.create_token(name="old", role="auditor")
    legacy = TOKEN_PREFIX + pysecrets.token_urlsafe(32)
    row_id = legacy[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 12]
    salt = pysecrets.token_bytes(16)
    with control.engine.begin() as conn:
        conn.execute(
            sa.insert(tokens).values(
                id=row_id,
                identity_id=ident.id,
                salt=salt,
                digest=hmac.new(salt, legacy.encode(), hashlib.sha256).digest(),
                created_at=utcnow(),
            )
        )
    # a row written by an older bastion (or anyone) without the key is refused until the owner seals it
    with pytest.raises(IntegrityError, match="seal does not match"):
        control.authenticate(legacy)
    owner = AccessControl(control.engine, control.audit, actor=control.local_owner(), sealer=control.sealer)
    assert owner.seal_all() == ["old"]
    assert control.authenticate(legacy).name == "old"
    shown = {t.id for t in control.list_tokens()}
    assert row_id not in shown and token_id(legacy) in shown and token_id(legacy).startswith("legacy-")
    before = control.audit.size()
    with pytest.raises(AuthenticationFailed):
        control.authenticate(legacy[:-1] + ("A" if legacy[-1] != "A" else "B"))
    assert row_id not in repr(control.audit.entries(start=before))
    control.revoke_token(token_id(legacy))
    with pytest.raises(AuthenticationFailed):
        control.authenticate(legacy)


def test_token_create_never_changes_an_identitys_grants(control: AccessControl) -> None:
    """Item 11: a token for an existing identity must not widen what its older tokens may do."""
    _ident, old = control.create_token(name="ci", role="deployer", models=("fraud",))
    with pytest.raises(Conflict, match="access grant"):
        control.create_token(name="ci", role="deployer", models=("*",))
    with pytest.raises(Conflict, match="access grant"):
        control.create_token(name="ci", role="deployer", models=("fraud", "churn"))
    assert control.authenticate(old).models == ("fraud",)
    _, same = control.create_token(name="ci", role="deployer")  # the identity's scope, unchanged
    _, same2 = control.create_token(name="ci", role="deployer", models=("fraud",))
    assert control.authenticate(same).models == control.authenticate(same2).models == ("fraud",)
    control.grant(name="ci", models=("churn",))  # the explicit way
    assert control.authenticate(old).models == ("fraud", "churn")
    with pytest.raises(Conflict, match="narrower"):
        control.create_token(name="ci", role="deployer", models=("fraud",))


def test_revoke_says_what_was_removed_and_refuses_a_no_op(control: AccessControl) -> None:
    """Item 12: revoking 'digits' from an identity holding '*' changes nothing and must say so."""
    control.grant(name="eng", role="ml-engineer", models=("*",))
    with pytest.raises(NotFound, match=r"nothing was removed.*models \*"):
        control.revoke(name="eng", models=("digits",))
    assert control.identity("eng").models == ("*",)
    control.grant(name="eng", models=("fraud",))
    result = control.revoke_scopes(name="eng", models=("fraud", "digits"))
    assert result.removed_models == ("fraud",) and result.not_held_models == ("digits",)
    assert result.identity is not None and result.identity.models == ("*",)


def test_revoked_name_is_a_clear_conflict(control: AccessControl) -> None:
    """Item 9: granting (or creating a token for) a revoked identity's name: one line, no SQL error."""
    control.grant(name="gone", role="auditor")
    control.revoke(name="gone")
    with pytest.raises(Conflict, match="was revoked"):
        control.grant(name="gone", role="auditor")
    with pytest.raises(Conflict, match="was revoked"):
        control.create_token(name="gone", role="auditor")


@pytest.mark.parametrize("bad", ["eve\n", "ève", "a b", "", "-x", "x" * 101, "ｅve"])
def test_identity_names_are_ascii_full_match(control: AccessControl, bad: str) -> None:
    """Issue 12 item 8 applied to identities: no trailing newline, no look-alike or non-ASCII names."""
    with pytest.raises(InvalidInput):
        control.grant(name=bad, role="auditor")
    with pytest.raises(InvalidInput):
        control.create_token(name=bad, role="auditor")


@pytest.mark.parametrize("bad", ["fraud\n", "frａud", "a b", ""])
def test_model_scopes_are_ascii_globs(control: AccessControl, bad: str) -> None:
    with pytest.raises(InvalidInput):
        control.grant(name="c", role="consumer", models=(bad,))
