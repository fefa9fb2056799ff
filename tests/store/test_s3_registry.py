"""Registry blobs on S3 chosen by bastion.toml (``[blobs] url = "s3://bucket/prefix"``), against a real moto
server on 127.0.0.1: push and pull through the vault, nothing under the home's blob directory, configuration
mistakes refused, and no credential in any message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
