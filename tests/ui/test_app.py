"""The dashboard app through FastAPI's TestClient: login, roles, sessions, escaping, every page's data."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest.importorskip("fastapi")

from bastion.ui import UIOptions
from bastion.ui.app import PAGES
from bastion.ui.sessions import SECURE_COOKIE

PAGE_PATHS = [p for p, _ in PAGES]


@pytest.mark.parametrize("path", [*PAGE_PATHS, "/nope"])
def test_every_page_needs_a_session(ui: Any, ui_project: Any, path: str) -> None:
    with ui[0](ui_project) as client:
        r = client.get(path)
        assert r.status_code == 302 and r.headers["location"] == "/login"
        assert client.post(path).status_code in (401, 405)
        client.cookies.set(SECURE_COOKIE, "forged-session-id")
        assert client.get(path).status_code == 302


def test_bad_token_is_refused_and_throttled(ui: Any, ui_project: Any) -> None:
    with ui[0](ui_project) as client:
        r = ui[1](client, "bst_deadbeef.nottherealsecret")
        assert r.status_code == 401 and "invalid token" in r.text
        assert not client.cookies
        for _ in range(10):
            ui[1](client, "bst_x.y")
        assert ui[1](client, ui_project.tokens["auditor"]).status_code == 429


@pytest.mark.parametrize("role", ["consumer", "data-scientist"])
def test_roles_below_auditor_get_403(ui: Any, ui_project: Any, role: str) -> None:
    with ui[0](ui_project) as client:
        r = ui[1](client, ui_project.tokens[role])
        assert r.status_code == 403 and "auditor or admin" in r.text
        assert not client.cookies
        assert client.get("/inventory").status_code == 302


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_login_sets_a_safe_cookie_and_every_page_renders(ui: Any, ui_project: Any, role: str) -> None:
    token = ui_project.tokens[role]
    with ui[0](ui_project) as client:
        r = ui[1](client, token)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{SECURE_COOKIE}=")
        for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
            assert flag.lower() in cookie.lower()
        value = client.cookies[SECURE_COOKIE]
        assert token not in cookie and token.split(".")[-1] not in cookie and len(value) >= 40
        for path in PAGE_PATHS:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert "script-src" not in page.headers["content-security-policy"]
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-store"
            assert "<script" not in page.text  # no page ships a script, and no payload renders as one
            assert token not in page.text


def test_pages_show_the_data_and_escape_it(ui: Any, ui_project: Any) -> None:
    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        inv = client.get("/inventory").text
        assert "fraud" in inv and "confidential" in inv and "verified" in inv and "prod" in inv
        assert "train&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in inv  # the metadata's dataset name
        audits = client.get("/audits").text
        assert 'grade <span class="grade">C</span>' in audits and "0.41" in audits
        assert "reviewer note &lt;script&gt;" in audits and "<img src=x" not in audits
        assert "Plots from the matching report.json" in audits and "Accuracy vs ε" in audits
        lineage = client.get("/lineage").text
        assert "<svg" in lineage and "bastion train" in lineage and "customers&lt;script&gt;" in lineage
        alerts = client.get("/alerts").text
        assert "gateway: extraction monitor" in alerts and "mallory" in alerts
        assert "guard: prompt blocked" in alerts and "7 request(s) without a valid token" in alerts
        assert "1 request(s) deny:rate" in alerts and "query burst &lt;script&gt;" in alerts
        assert "allow: 1" not in alerts and alerts.count("without a valid token") == 1
        log = client.get("/log").text
        assert 'id="log-status">UNWITNESSED<' in log
        overview = client.get("/").text
        assert 'id="count-models">1<' in overview and "UNWITNESSED" in overview


def test_tampered_log_shows_failed(ui: Any, ui_project: Any) -> None:
    import sqlalchemy as sa

    from bastion.config import load_settings

    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        engine = sa.create_engine(load_settings(ui_project.home).database_url)
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT idx, data FROM audit_entries")).all()
            idx, data = next((i, d) for i, d in rows if b"mallory" in d)
            conn.execute(
                sa.text("UPDATE audit_entries SET data = :d WHERE idx = :i"),
                {"d": data.replace(b"mallory", b"nobody!"), "i": idx},
            )
        engine.dispose()
        page = client.get("/log")
        assert page.status_code == 200 and 'id="log-status">FAILED<' in page.text


def test_revoked_token_ends_the_session_and_logout_works(ui: Any, ui_project: Any) -> None:
    from bastion.access import token_id
    from bastion.vault import open_vault

    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        assert client.get("/inventory").status_code == 200
        assert client.post("/logout").status_code == 303
        assert client.get("/inventory").status_code == 302
        ui[1](client, ui_project.tokens["auditor"])
        assert client.get("/inventory").status_code == 200
        with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
            owner.access.revoke_token(token_id(ui_project.tokens["auditor"]))
        assert client.get("/inventory").status_code == 302


def test_insecure_only_on_loopback_and_plain_cookie(ui: Any, ui_project: Any) -> None:
    from bastion.errors import ConfigError
    from bastion.ui.server import check_options

    with pytest.raises(ConfigError, match="loopback"):
        check_options(UIOptions(host="0.0.0.0", insecure=True))
    with ui[0](ui_project, insecure=True) as client:
        r = ui[1](client, ui_project.tokens["auditor"])
        assert (
            r.headers["set-cookie"].startswith("bastion_ui=")
            and "secure" not in r.headers["set-cookie"].lower()
        )
        assert client.get("/").status_code == 200


def test_witnessed_log_shows_ok(ui: Any, ui_project: Any, tmp_path: Any) -> None:
    from bastion.vault import open_vault

    spool = tmp_path / "witness" / "heads.jsonl"
    spool.parent.mkdir()
    with (ui_project.home / "bastion.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[[log.witness]]\nkind = "file"\npath = "{spool}"\n')
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        owner.audit.append(actor="owner", action="test:witnessed", target="-", outcome="ok", details={})
    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        page = client.get("/log").text
        assert 'id="log-status">OK<' in page, page
        assert "every entry is held by a witness" in page and "heads.jsonl" in page


def test_drift_page_charts_the_gateway_state(ui: Any, ui_project: Any) -> None:
    from bastion.serve.drift import state_path, write_state
    from bastion.vault import open_vault

    write_state(
        state_path(ui_project.home, "fraud"),
        {
            "model": "fraud",
            "version": 1,
            "state": "alert",
            "samples": 500,
            "max_feature_psi": 0.61,
            "prediction_psi": 0.05,
            "confidence_drop": 0.02,
            "alerts": ["input drift: 3 feature(s) PSI > 0.25"],
            "thresholds": {"feature_psi": 0.25, "prediction_psi": 0.2, "confidence_drop": 0.1},
            "updated_at": "2026-12-05T03:00:00+00:00",
        },
    )
    with open_vault(home=ui_project.home, passphrase=os.environ["BASTION_PASSPHRASE"]) as owner:
        owner.audit.append(
            actor="gateway",
            action="serve:drift-alert",
            target="fraud",
            outcome="ok",
            details={"model": "fraud", "version": 1, "max_feature_psi": 0.61, "alerts": ["input drift"]},
        )
    with ui[0](ui_project) as client:
        ui[1](client, ui_project.tokens["auditor"])
        page = client.get("/drift").text
        assert "fraud:1" in page and ">alert<" in page and "input drift: 3 feature(s)" in page
        assert "0.61" in page and "threshold 0.25" in page and page.count("<svg") >= 4
        inventory = client.get("/inventory").text
        assert ">alert<" in inventory
        assert "gateway: drift" in client.get("/alerts").text
