"""``bastion watermark …`` and ``bastion train --watermark-key`` through the CLI entry point, against the
real gateway for ``--url``, and once as a real subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._support.cli_home import project_home
from tests._support.server_thread import ServerThread

from bastion.cli import run
from bastion.vault import open_vault

from .conftest import KEY, OTHER_KEY

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_home(tmp_path, monkeypatch)  # bastion's own inspectors: pushes are scanned


def _save(module: Any, path: Path, n_features: int = 64) -> Path:
    from bastion.models.recipes import MlpConfig, save_model

    return save_model(module, path, config=MlpConfig(n_features=n_features, n_classes=10, hidden=(64,)))


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


@contextlib.contextmanager
def _gateway(home: Path, module: Any) -> Iterator[tuple[str, str]]:
    """The real bastion gateway serving ``module`` as ``digits`` on 127.0.0.1:<ephemeral>, and a token."""
    from bastion.models import TorchAdapter
    from bastion.serve import Authenticator, Gateway, GatewayConfig, ServedModel, create_app

    vault = open_vault(home=home)
    _, token = vault.create_token(name="investigator", role="consumer", models=["digits"])
    adapter = TorchAdapter(module, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    served = ServedModel(name="digits", version="1", adapter=adapter, digest="sha256:test", env="dev")
    gateway = Gateway(
        model=served,
        config=GatewayConfig(),
        authenticator=Authenticator(verify_token=vault.authenticate),
        audit=vault.audit,
    )
    # log_config=None: uvicorn's dictConfig would close every existing handler, absl's included, and with it
    # pytest's captured stderr (dp_accounting imports absl)
    try:
        with ServerThread(create_app(gateway), log_config=None) as server:
            yield server.url, token
    finally:
        gateway.close()
        vault.close()


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.slow
def test_embed_verify_report_and_errors(home: Path, tmp_path: Path, clean_model, capsys, monkeypatch) -> None:
    clean = _save(clean_model.module, tmp_path / "clean")
    from bastion.watermark import write_key_file

    key = write_key_file(KEY, tmp_path / "wm.key")  # a fixed key: the accuracy figures are reproducible
    key_id = KEY.key_id

    wm = tmp_path / "wm"
    args = ["watermark", "embed", "--model", str(clean), "--dataset", "digits", "--key-file", str(key)]
    assert run([*args, "--out", str(wm), "--record", str(tmp_path / "rec.json"), "--format", "json"]) == 0
    doc = _json(capsys)
    assert doc["p_value"] < 1e-6 and doc["accuracy_drop"] <= 0.01
    assert doc["record"]["key_id"] == key_id and isinstance(doc["record"]["audit_index"], int)

    # the watermarked copy: found (exit 1); the clean original: not found (exit 0)
    assert run(["watermark", "verify", "--model", str(wm), "--key-file", str(key), "--format", "json"]) == 1
    found = _json(capsys)
    assert found["verdict"] == "owned" and found["p_value"] < 1e-6 and found["trigger_accuracy"] >= 0.7
    assert (
        run(["watermark", "verify", "--model", str(clean), "--key-file", str(key), "--format", "json"]) == 0
    )
    assert _json(capsys)["verdict"] == "not_detected"

    # a wrong key is a clear error, not a silent "not found"
    other = tmp_path / "other.key"
    assert run(["watermark", "keygen", "--out", str(other), "--format", "json"]) == 0
    assert _json(capsys)["key_id"] != key_id and other.stat().st_mode & 0o777 == 0o600
    assert run(["watermark", "verify", "--model", str(wm), "--key-file", str(other)]) == 2
    assert "wrong watermark key" in capsys.readouterr().err
    # wrong input shape
    from bastion.models.recipes import build_mlp

    narrow = _save(build_mlp(n_features=30, n_classes=10, hidden=(64,), seed=0), tmp_path / "narrow", 30)
    rec = str(tmp_path / "rec.json")
    assert run(["watermark", "verify", "--model", str(narrow), "--key-file", str(key), "--record", rec]) == 2
    assert "wrong input shape" in capsys.readouterr().err
    # unreachable URL
    url = f"http://127.0.0.1:{_closed_port()}"
    argv = ["watermark", "verify", "--url", url, "--model-name", "digits", "--key-file", str(key)]
    assert run(argv) == 2
    assert "unreachable" in capsys.readouterr().err

    # a signed ownership report, checked with the owner's public key and the revealed key
    report = tmp_path / "report.json"
    assert (
        run(["watermark", "verify", "--model", str(wm), "--key-file", str(key), "--report", str(report)]) == 1
    )
    capsys.readouterr()
    pub = str(home / "signing" / "tree-key.pub.pem")
    check = ["watermark", "report-verify", str(report), "--public-key", pub, "--key-file", str(key)]
    assert run([*check, "--format", "json"]) == 0
    assert _json(capsys)["valid"] is True
    doc = json.loads(report.read_text())
    doc["report"]["verification"]["hits"] = 50
    report.write_text(json.dumps(doc))
    assert run(check) == 1
    assert "error:" in capsys.readouterr().err

    # the real gateway (Open Inference Protocol v2) serving the stolen copy
    from bastion.models.recipes import load_model

    with _gateway(home, load_model(wm).module) as (base, token):
        monkeypatch.setenv("SUSPECT_TOKEN", token)
        argv = ["watermark", "verify", "--url", base, "--model-name", "digits", "--key-file", str(key)]
        assert run([*argv, "--bearer-env", "SUSPECT_TOKEN", "--format", "json"]) == 1
        remote = _json(capsys)
        assert remote["verdict"] == "owned" and remote["suspect"].endswith("/v2/models/digits")
        assert run(argv) == 2  # no token: the gateway refuses, and verify says so
        assert "HTTP 401" in capsys.readouterr().err

    # as a real subprocess
    proc = subprocess.run(
        [BASTION, "watermark", "verify", "--model", str(wm), "--key-file", str(key), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BASTION_HOME": str(home)},
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "owned"


@pytest.mark.slow
def test_home_key_push_and_train_with_watermark(home: Path, tmp_path: Path, clean_model, capsys) -> None:
    assert run(["watermark", "keygen", "--format", "json"]) == 0
    key_id = _json(capsys)["key_id"]
    clean = _save(clean_model.module, tmp_path / "clean")
    argv = ["watermark", "embed", "--model", str(clean), "--dataset", "digits"]
    assert run([*argv, "--push", "digits-wm", "--format", "json"]) == 0
    pushed = _json(capsys)
    assert pushed["pushed"]["name"] == "digits-wm" and pushed["record"]["model"] == "digits-wm:1"
    assert run(["watermark", "verify", "--model", "digits-wm", "--format", "json"]) == 1
    assert _json(capsys)["key_id"] == key_id
    vault = open_vault(home=home)
    try:
        notes = vault.annotations("digits-wm:1", namespace="watermark")
        assert notes and notes[-1].data["commitment"] == pushed["record"]["commitment"]
        actions = [e.action for e in vault.log_entries()]
        assert "watermark:keygen" in actions and "watermark:embed" in actions
    finally:
        vault.close()

    out = tmp_path / "trained"
    train = ["train", "--dataset", "digits", "--out", str(out), "--watermark-key", key_id, "--format", "json"]
    assert run(train) == 0
    trained = _json(capsys)
    assert trained["watermark"]["p_value"] < 1e-6 and trained["accuracy"] > 0.95
    assert run(["watermark", "verify", "--model", str(out), "--key-id", key_id]) == 1
    assert "owned" in capsys.readouterr().out
    assert run(["watermark", "embed", "--model", str(clean), "--dataset", "digits"]) == 2
    assert "--out" in capsys.readouterr().err


def test_verify_api_marks_from_the_cli(tmp_path: Path, clean_model, digits, capsys) -> None:
    import numpy as np

    from bastion.models.adapters import TorchAdapter
    from bastion.watermark import ApiWatermark, write_key_file

    victim = TorchAdapter(clean_model.module, input_shape=(64,), n_classes=10)
    wm = ApiWatermark(KEY, rate=0.005)
    pool = np.concatenate([digits.x_train, digits.x_test])
    wm.apply(pool, victim.predict_proba(pool))
    marks = wm.marks().save(tmp_path / "marks.json")
    key = write_key_file(KEY, tmp_path / "wm.key")
    model = _save(clean_model.module, tmp_path / "victim")
    argv = ["watermark", "verify", "--model", str(model), "--marks", str(marks), "--format", "json"]
    assert run([*argv, "--key-file", str(key)]) == 0  # the victim's own answers never carry the marks
    doc = _json(capsys)
    assert doc["method"] == "api" and doc["hits"] == 0 and doc["chance"] == pytest.approx(1 / 9)
    write_key_file(OTHER_KEY, tmp_path / "other.key")
    assert run([*argv, "--key-file", str(tmp_path / "other.key")]) == 2
    assert "wrong watermark key" in capsys.readouterr().err
    assert run([*argv, "--key-file", str(key), "--report", str(tmp_path / "r.json")]) == 2
    assert "--report" in capsys.readouterr().err
