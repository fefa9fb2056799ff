"""Dashboard logins (issue 17 L1-L3): failed logins logged in aggregate with the address, one identity
cannot push other sessions out, and a sign-in form posted from another site is refused."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bastion.access import Identity
from bastion.errors import AuthenticationFailed
from bastion.ui.sessions import LoginThrottled, Sessions, same_origin
from bastion.vault import open_vault


class _Vault:
    def __init__(self, identity: Identity) -> None:
        self.identity, self.closed = identity, False

    def authenticate(self, token: str) -> Identity:
        return self.identity

    def close(self) -> None:
        self.closed = True


def _identity(name: str) -> Identity:
    return Identity(id=name, name=name, role="auditor")  # type: ignore[call-arg]


def _sessions(**limits: Any) -> tuple[Sessions, list[str]]:
    failed: list[str] = []

    def authenticate(token: str) -> Identity:
        if not token.startswith("good-"):
            raise AuthenticationFailed("invalid token")
        return _identity(token.removeprefix("good-"))

    sessions = Sessions(
        authenticate=authenticate,
        open_vault=lambda token: _Vault(authenticate(token)),
        on_failure=failed.append,
        **limits,
    )
    return sessions, failed


@pytest.mark.parametrize("fixed", [False, True])
def test_one_auditor_logging_in_again_and_again_does_not_evict_others(fixed: bool) -> None:
    limits = {} if fixed else {"max_per_identity": 10**6, "max_logins": 10**6}
    sessions, _ = _sessions(**limits)
    others = [sessions.login(f"good-auditor-{i}", client="10.0.0.1") for i in range(3)]
    mine = []
    for _ in range(33):
        try:
            mine.append(sessions.login("good-mallory", client="10.0.0.2"))
        except LoginThrottled:
            break
    alive = [sid for sid in others if sessions.get(sid) is not None]
    if fixed:
        assert alive == others  # everyone else still signed in
        assert len(mine) == 10  # successful logins rate-limited per identity
        assert sum(sessions.get(sid) is not None for sid in mine) == sessions.max_per_identity
    else:
        assert alive == []  # the attack: 33 logins pushed every other session out


def test_failed_logins_are_reported_with_the_address() -> None:
    sessions, failed = _sessions()
    for i in range(3):
        with pytest.raises(AuthenticationFailed):
            sessions.login("bad", client=f"2001:db8::{i}")
    assert failed == ["2001:db8::/64"] * 3  # rotating addresses within one /64 is one source
    for _ in range(7):
        with pytest.raises(AuthenticationFailed):
            sessions.login("bad", client=f"2001:db8::{_ + 100:x}")
    assert sessions.throttled("2001:db8::ffff") and not sessions.throttled("2001:db8:1::1")
    assert not sessions.throttled("192.0.2.1")


@pytest.mark.parametrize(
    ("origin", "fetch_site", "ok"),
    [
        (None, None, True),
        ("https://127.0.0.1:8443", "same-origin", True),
        (None, "none", True),
        ("https://evil.example", "cross-site", False),
        ("https://evil.example", None, False),
        (None, "same-site", False),
        ("null", None, False),
        ("null", "same-origin", True),  # a form under Referrer-Policy: no-referrer (what Chromium sends)
        ("null", "cross-site", False),
    ],
)
def test_same_origin(origin: str | None, fetch_site: str | None, ok: bool) -> None:
    assert same_origin(origin=origin, fetch_site=fetch_site, host="127.0.0.1:8443") is ok


def test_login_csrf_refused_and_failed_logins_logged_in_aggregate(ui: Any, ui_project: Any) -> None:
    passphrase = os.environ["BASTION_PASSPHRASE"]
    with open_vault(home=ui_project.home, passphrase=passphrase) as v:
        before = v.log_head().size
    form = {"content-type": "application/x-www-form-urlencoded"}
    with ui[0](ui_project) as client:
        token = ui_project.tokens["auditor"]
        evil = {**form, "origin": "https://evil.example", "sec-fetch-site": "cross-site"}
        r = client.post("/login", content=f"token={token}", headers=evil)
        assert r.status_code == 403 and not client.cookies  # login CSRF: nobody signed in
        mine = {**form, "origin": "https://127.0.0.1", "sec-fetch-site": "same-origin"}
        assert client.post("/login", content=f"token={token}", headers=mine).status_code == 303
        for _ in range(8):
            ui[1](client, "bst_x.y")
    with open_vault(home=ui_project.home, passphrase=passphrase) as v:
        entries = [e for e in v.log_entries(start=before) if e.action == "auth" and e.outcome == "denied"]
    # 8 failures from one address: the first at once, the other 7 as one counted entry at shutdown
    assert [(e.target, e.details.get("count")) for e in entries] == [("127.0.0.1", 1), ("127.0.0.1", 7)]
