"""Registry blobs on S3 chosen by bastion.toml (``[blobs] url = "s3://bucket/prefix"``), against a real moto
server on 127.0.0.1: push and pull through the vault, nothing under the home's blob directory, configuration
mistakes refused, and no credential in any message."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from bastion.crypto.kdf import KdfParams  # noqa: E402
from bastion.errors import ConfigError  # noqa: E402
from bastion.store.s3 import S3BlobStore  # noqa: E402
from bastion.vault import init_project, open_vault  # noqa: E402

from .._support.moto import SECRET, moto_server, s3_env  # noqa: E402

PASSPHRASE = "s3 registry tests passphrase"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        s3_env(mp, url)
        boto3.client("s3").create_bucket(Bucket="bastion-registry")
        yield url


def model_dir(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    np.save(root / "w.npy", np.arange(20_000, dtype=np.float32) + seed)
    (root / "config.json").write_text(f'{{"seed": {seed}}}', encoding="utf-8")
    return root


def with_s3_blobs(home: Path, url: str, *, extra: str = "") -> None:
    """Point an existing home's blob store at the bucket (what an operator writes in bastion.toml)."""
    with (home / "bastion.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[blobs]\nurl = "s3://bastion-registry/team-a"\n{extra}')


def _keys(prefix: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket="bastion-registry", Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def test_configured_bucket_holds_the_registry_blobs(s3_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]).close()
    with_s3_blobs(home, s3_url)
    src = model_dir(tmp_path / "m")
    with open_vault(home=home, passphrase=PASSPHRASE) as vault:
        assert isinstance(vault.blobs, S3BlobStore)
        version = vault.push(src, name="on-s3")
        vault.pull(version.ref, out=tmp_path / "out")
    for f in ("w.npy", "config.json"):
        assert (tmp_path / "out" / f).read_bytes() == (src / f).read_bytes()
    assert not [p for p in (home / "blobs").rglob("*") if p.is_file()]  # nothing kept on local disk
    stored = _keys("team-a/blobs/")
    assert stored and all(k.startswith("team-a/blobs/b3-") for k in stored)
    plaintext = (src / "w.npy").read_bytes()[1024:5120]
    for key in stored:  # ciphertext only in the bucket
        body = boto3.client("s3").get_object(Bucket="bastion-registry", Key=key)["Body"].read()
        assert plaintext not in body


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('path = "blobs"\n', "either path"),
        ('secret_access_key = "x"\n', "secret_access_key"),
        ("region = 3\n", "region"),
    ],
)
def test_blob_configuration_mistakes_are_refused(
    s3_url: str, tmp_path: Path, extra: str, needle: str
) -> None:
    home = tmp_path / "home"
    init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]).close()
    with_s3_blobs(home, s3_url, extra=extra)
    with pytest.raises(ConfigError, match=needle):
        open_vault(home=home, passphrase=PASSPHRASE, inspectors=[]).close()


def test_a_missing_bucket_fails_closed_without_credentials_in_the_error(
    s3_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli import run

    home = tmp_path / "home"
    init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]).close()
    text = (home / "bastion.toml").read_text(encoding="utf-8")
    (home / "bastion.toml").write_text(text + '\n[blobs]\nurl = "s3://no-such-bucket/x"\n', encoding="utf-8")
    src = model_dir(tmp_path / "m")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_PASSPHRASE", PASSPHRASE)
        code = run(["registry", "push", str(src), "--name", "nowhere", "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-bucket" in err and "Traceback" not in err
    assert SECRET not in err and "bastion-test-access-key" not in err


# --- the team variant: one registry server and two gateways share the bucket and PostgreSQL ---

CLI = [sys.executable, "-c", "from bastion.cli import main; main()"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], ready: str, *, verify: str | bool, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited: {proc.stderr.read()[-800:] if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready, verify=verify, timeout=2).status_code == 200:
                return proc
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not become ready")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.slow
@pytest.mark.postgres
def test_server_and_two_gateways_share_the_bucket_and_postgres(
    s3_url: str, postgres_url: str, tmp_path: Path
) -> None:
    from bastion.models.recipes import MlpConfig, build_mlp, load_dataset, save_model, train_model
    from bastion.serve.server import ServeOptions, approve_gateway
    from bastion.serve.tls import self_signed_certificate

    from .._support.postgres import postgres_schema

    data = load_dataset("digits")
    module = build_mlp(n_features=64, n_classes=10, hidden=(16,), seed=0)
    train_model(model=module, dataset=data, epochs=2, batch_size=64, lr=0.1, seed=0)
    model = tmp_path / "digits"
    save_model(module, model, config=MlpConfig(n_features=64, n_classes=10, hidden=(16,)))
    procs: list[subprocess.Popen[str]] = []
    with postgres_schema(postgres_url, prefix="bastion_s3") as db_url:
        home = tmp_path / "home"
        vault = init_project(
            home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), database_url=db_url
        )
        _, pusher = vault.create_token(name="alice-ds", role="data-scientist", models=[], envs=["dev"])
        _, caller = vault.create_token(name="app", role="consumer", models=["digits"])
        vault.close()
        with_s3_blobs(home, s3_url)
        cert, key = self_signed_certificate(tmp_path / "tls")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env["BASTION_PASSPHRASE"] = PASSPHRASE
        try:
            port = _port()
            server = f"https://127.0.0.1:{port}"
            serve_args = ["server", "--home", str(home), "--port", str(port), "--tls-cert", str(cert)]
            procs.append(
                _start([*serve_args, "--tls-key", str(key)], f"{server}/healthz", verify=str(cert), env=env)
            )
            client_env = {  # the pusher holds a token only: no passphrase, home, database or bucket key
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(tmp_path),
                "BASTION_HOME": str(tmp_path / "no-home"),
                "BASTION_URL": server,
                "BASTION_CA": str(cert),
                "BASTION_TOKEN": pusher,
            }
            push = subprocess.run(
                [*CLI, "registry", "push", str(model), "--name", "digits"],
                env=client_env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert push.returncode == 0, push.stderr
            assert _keys("team-a/blobs/") and not [p for p in (home / "blobs").rglob("*") if p.is_file()]
            approve_gateway(ServeOptions(model_ref="digits:1", home=str(home)), passphrase=PASSPHRASE)
            gateways = []
            for _ in range(2):
                gw = f"http://127.0.0.1:{_port()}"
                args = [
                    "serve",
                    "digits:1",
                    "--insecure",
                    "--port",
                    gw.rsplit(":", 1)[1],
                    "--home",
                    str(home),
                ]
                procs.append(_start(args, f"{gw}/v2/health/ready", verify=False, env=env))
                gateways.append(gw)
            x = np.asarray(data.x_test[:4], dtype=np.float32)
            body = {
                "inputs": [
                    {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
                ]
            }
            answers = []
            for gw in gateways:
                r = httpx.post(
                    f"{gw}/v2/models/digits/infer", json=body, headers={"Authorization": f"Bearer {caller}"}
                )
                assert r.status_code == 200, r.text
                answers.append(r.json())
            assert answers[0]["model_version"] == answers[1]["model_version"] == "1"
            assert answers[0]["outputs"] == answers[1]["outputs"]
        finally:
            for proc in procs:
                _stop(proc)
