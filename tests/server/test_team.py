"""Two-user (and more) scenarios through the remote CLI against a real ``bastion server`` over TLS.

None of the clients has the passphrase, the home or the database: only BASTION_URL, a token and the CA. The
client is a real subprocess once per command group (registry, token, log, access, login) and for every bad or
missing token; the other calls run the same entry point in-process with that same environment
(``server.run``, tests/_support/inprocess.py).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # one server process


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal is one ``error:`` line (plus at most a ``hint:``), never a traceback."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("error: "), result.stderr
    assert all(ln.startswith("hint: ") for ln in lines[1:]), result.stderr
    return lines[0]


def model(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "weights.npy", np.arange(1024, dtype=np.float32) * (seed + 1))
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "config.json").write_text(f'{{"seed": {seed}}}', encoding="utf-8")
    return root


def test_clients_hold_no_secret(server: Any) -> None:
    env = server.env(server.tokens["alice-ds"])
    assert "BASTION_PASSPHRASE" not in env
    assert not Path(env["BASTION_HOME"]).exists()
    r = server.cli("alice-ds", "registry", "list")
    assert r.returncode == 0, r.stderr


def test_data_scientist_cannot_push_to_prod_mint_tokens_or_read_the_log(server: Any, tmp_path: Path) -> None:
    src = model(tmp_path / "m")
    ok = server.run("alice-ds", "registry", "push", str(src), "--name", "ds-model")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("pushed ds-model:1 (dev, manifest ")
    prod = server.run("alice-ds", "registry", "push", str(src), "--name", "ds-model", "--env", "prod")
    assert prod.returncode == 2
    assert error_line(prod) == "error: alice-ds (data-scientist) may not registry:push on ds-model in prod"
    mint = server.cli("alice-ds", "token", "create", "--role", "admin", "--name", "sneaky")
    assert mint.returncode == 2
    assert "may not access:manage" in error_line(mint)
    log = server.cli("alice-ds", "log", "verify")
    assert log.returncode == 2
    assert error_line(log) == "error: alice-ds (data-scientist) may not log:read"
    grant = server.cli("alice-ds", "access", "grant", "alice-ds", "--env", "prod")
    assert grant.returncode == 2
    # each refusal is in the server's audit log, as the data scientist (read by the auditor)
    entries = server.run("aud-auditor", "log", "show", "--limit", "500")
    assert entries.returncode == 0, entries.stderr
    denied = [ln for ln in entries.stdout.splitlines() if "\talice-ds\t" in ln and ln.endswith("\tdenied")]
    actions = {ln.split("\t")[3] for ln in denied}
    assert {"registry:push", "access:manage", "log:read"} <= actions


def test_deployer_cannot_push_and_auditor_verifies_but_cannot_pull(server: Any, tmp_path: Path) -> None:
    src = model(tmp_path / "m", seed=1)
    assert server.run("ada-admin", "registry", "push", str(src), "--name", "aud-model").returncode == 0
    push = server.run("dan-deployer", "registry", "push", str(src), "--name", "aud-model")
    assert push.returncode == 2
    assert error_line(push) == "error: dan-deployer (deployer) may not registry:push on aud-model in dev"
    verify = server.run("aud-auditor", "registry", "verify", "aud-model:1")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("aud-model:1: OK (2 files, manifest ")
    log = server.run("aud-auditor", "log", "verify")
    assert log.returncode == 0, log.stderr
    assert log.stdout.startswith("audit log consistent: ")
    assert "UNWITNESSED" in log.stdout  # no witness configured: said, never a bare OK
    out = tmp_path / "pulled"
    pull = server.run("aud-auditor", "registry", "pull", "aud-model:1", "--out", str(out))
    assert pull.returncode == 2
    assert error_line(pull) == "error: aud-auditor (auditor) may not registry:pull on aud-model"
    assert not out.exists()  # nothing left behind by a refused pull


def test_revocation_takes_effect_on_the_next_call(server: Any) -> None:
    made = server.run("ada-admin", "token", "create", "--role", "data-scientist", "--name", "temp-ds")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert server.run(token, "registry", "list").returncode == 0
    listed = server.run("ada-admin", "token", "list")
    token_id = next(ln.split("\t")[0] for ln in listed.stdout.splitlines() if "\ttemp-ds\t" in ln)
    assert token.startswith(f"bst_{token_id}.")
    revoked = server.run("ada-admin", "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    after = server.run(token, "registry", "list")
    assert after.returncode == 2
    assert error_line(after) == "error: invalid API token"
    # disabling an identity ends its other tokens too, at once
    second = server.run("ada-admin", "token", "create", "--role", "data-scientist", "--name", "temp-ds2")
    token2 = second.stdout.strip()
    assert server.run(token2, "registry", "list").returncode == 0
    assert server.run("ada-admin", "access", "revoke", "temp-ds2").returncode == 0
    assert error_line(server.run(token2, "registry", "list")) == "error: invalid API token"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("bst_0123456789abcdef.not-the-secret", "error: invalid API token"),
        ("", "error: $BASTION_TOKEN is set but empty: give a token, or unset it to use a saved login"),
        ("hunter2", "error: $BASTION_TOKEN is not a bastion API token (bst_<id>.<secret>)"),
    ],
)
def test_wrong_token_is_one_line_exit_2(server: Any, token: str, expected: str) -> None:
    r = server.cli(token, "registry", "list")
    assert r.returncode == 2
    assert error_line(r) == expected
    assert token not in r.stderr or not token


def test_no_token_and_local_only_commands_are_refused(server: Any, tmp_path: Path) -> None:
    r = server.cli(None, "registry", "list")
    assert r.returncode == 2
    assert error_line(r).startswith(
        f"error: no token for {server.url}: set $BASTION_TOKEN or run 'bastion login"
    )
    for args, name in [
        (("init",), "init"),
        (("access", "seal"), "access seal"),
        (("data", "scan", str(tmp_path)), "data scan"),
        (("lineage", "show"), "lineage show"),  # (serve takes its model from $BASTION_URL: tests/serve)
    ]:
        got = server.run("ada-admin", *args)
        assert got.returncode == 2, (args, got.stderr)
        assert error_line(got) == (
            f"error: 'bastion {name}' needs the local key ring or database: "
            "it does not run with $BASTION_URL set"
        )
    assert not (tmp_path / "no-home-here").exists()
    home = server.run("ada-admin", "registry", "list", "--home", str(server.home))
    assert home.returncode == 2  # never silently the local home's keys
    assert "--home names a local project" in error_line(home)


def test_login_saves_the_token_0600_and_logout_forgets_it(server: Any) -> None:
    token = server.tokens["alice-ds"]
    env_home = server.client_home / "login-user"
    env_home.mkdir()
    cfg = env_home / ".config"
    login = subprocess.run(
        [*server_cli(), "login", "--url", server.url, "--token-stdin"],
        input=token + "\n",
        env=server.env(None, XDG_CONFIG_HOME=str(cfg), HOME=str(env_home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert login.returncode == 0, login.stderr
    assert "as alice-ds (data-scientist)" in login.stdout
    assert token not in login.stdout + login.stderr
    saved = cfg / "bastion" / "credentials"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(saved.parent).st_mode) == 0o700
    r = server.run(None, "registry", "list", XDG_CONFIG_HOME=str(cfg), HOME=str(env_home))
    assert r.returncode == 0, r.stderr
    out = server.run(None, "logout", XDG_CONFIG_HOME=str(cfg), HOME=str(env_home))
    assert out.returncode == 0 and server.url in out.stdout
    again = server.run(None, "registry", "list", XDG_CONFIG_HOME=str(cfg), HOME=str(env_home))
    assert again.returncode == 2 and "no token for" in error_line(again)
    # a credentials file others may read is refused, not used
    saved.chmod(0o644)
    loose = server.run(None, "registry", "list", XDG_CONFIG_HOME=str(cfg), HOME=str(env_home))
    assert loose.returncode == 2 and "mode 0600" in error_line(loose)
    bad = subprocess.run(
        [*server_cli(), "login", "--url", server.url, "--token-stdin"],
        input="bst_0123456789abcdef.wrong\n",
        env=server.env(None, XDG_CONFIG_HOME=str(cfg / "x"), HOME=str(env_home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and error_line(bad) == "error: invalid API token"
    assert not (cfg / "x" / "bastion" / "credentials").exists()


def server_cli() -> list[str]:
    import sys

    return [sys.executable, "-c", "from bastion.cli import main; main()"]
