"""Signing from digests computed by the caller (the vault's one-read push): same signature, same checks."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import SigningKeys
from bastion.errors import IntegrityError, InvalidInput

FAST = KdfParams(time_cost=1, memory_kib=256)
MODEL_SIGNING_CLI = Path(sys.executable).parent / "model_signing"


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys.create(tmp_path / "home", "pass phrase", kdf=FAST)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "weights.bin").write_bytes(os.urandom(5000))
    (d / "sub" / "config.json").write_text('{"layers": 3}')
    (d / "empty.txt").write_bytes(b"")
    return d


def digests_of(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def statement(sig: Path) -> dict[str, object]:
    envelope = json.loads(sig.read_bytes())["dsseEnvelope"]
    doc: dict[str, object] = json.loads(base64.b64decode(envelope["payload"]))
    serialization = doc["predicate"]["serialization"]  # type: ignore[index]
    serialization["ignore_paths"] = sorted(serialization["ignore_paths"])
    return doc


def test_same_statement_as_sign_directory_and_it_verifies(
    keys: SigningKeys, model: Path, tmp_path: Path
) -> None:
    hashed = keys.sign_directory(directory=model, signature_path=tmp_path / "hashed.sig")
    given = keys.sign_digests(
        directory=model, digests=digests_of(model), signature_path=tmp_path / "given.sig"
    )
    assert given == hashed
    assert statement(tmp_path / "given.sig") == statement(tmp_path / "hashed.sig")
    keys.verify_directory(directory=model, signature_path=tmp_path / "given.sig")
    # inside the directory too (the signature file is then an ignored path, as upstream does it)
    keys.sign_digests(directory=model, digests=digests_of(model), signature_path=model / "model.sig")
    keys.verify_directory(directory=model, signature_path=model / "model.sig")


@pytest.mark.slow
def test_upstream_cli_verifies_a_signature_made_from_digests(
    keys: SigningKeys, model: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "given.sig"
    keys.sign_digests(directory=model, digests=digests_of(model), signature_path=sig)
    cmd = [str(MODEL_SIGNING_CLI), "verify", "key", str(model), "--signature", str(sig)]
    cmd += ["--public_key", str(keys.manifest_public_key_path)]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    (model / "weights.bin").write_bytes(b"edited")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0


def test_a_wrong_digest_is_signed_as_given_and_then_fails_verification(
    keys: SigningKeys, model: Path, tmp_path: Path
) -> None:
    digests = digests_of(model)
    digests["weights.bin"] = hashlib.sha256(b"something else").hexdigest()
    keys.sign_digests(directory=model, digests=digests, signature_path=tmp_path / "s.sig")
    with pytest.raises(IntegrityError):
        keys.verify_directory(directory=model, signature_path=tmp_path / "s.sig")


def test_file_set_must_match_exactly(keys: SigningKeys, model: Path, tmp_path: Path) -> None:
    digests = digests_of(model)
    missing = dict(digests)
    del missing["sub/config.json"]
    with pytest.raises(InvalidInput, match="missing"):
        keys.sign_digests(directory=model, digests=missing, signature_path=tmp_path / "a.sig")
    extra = {**digests, "ghost.bin": "00" * 32}
    with pytest.raises(InvalidInput, match="extra"):
        keys.sign_digests(directory=model, digests=extra, signature_path=tmp_path / "b.sig")
    for bad in ("zz" * 32, "00" * 31):
        with pytest.raises(InvalidInput, match="hex SHA-256"):
            keys.sign_digests(
                directory=model, digests={**digests, "weights.bin": bad}, signature_path=tmp_path / "c.sig"
            )
    assert not list(tmp_path.glob("*.sig"))


def test_symlinks_and_git_paths_are_refused(keys: SigningKeys, model: Path, tmp_path: Path) -> None:
    digests = digests_of(model)
    (model / "link").symlink_to(model / "weights.bin")
    with pytest.raises(InvalidInput, match="symbolic link"):
        keys.sign_digests(directory=model, digests=digests, signature_path=tmp_path / "a.sig")
    (model / "link").unlink()
    (model / ".gitignore").write_text("x")
    with pytest.raises(InvalidInput, match="git paths"):
        keys.sign_digests(directory=model, digests=digests, signature_path=tmp_path / "b.sig")
