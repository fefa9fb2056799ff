"""Manifest signing (model-signing, verified by the upstream CLI too) and Ed25519 for tree heads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.crypto.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    SigningKeys,
    directory_manifest,
    verify_directory,
)
from bastion.errors import Conflict, IntegrityError, InvalidInput, WrongPassphrase

PASS = "correct horse battery staple"
FAST = KdfParams(time_cost=1, memory_kib=256)
MODEL_SIGNING_CLI = Path(sys.executable).parent / "model_signing"


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys.create(tmp_path / "home", PASS, kdf=FAST)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "weights.bin").write_bytes(os.urandom(4096))
    (d / "config.json").write_text('{"layers": 3}')
    (d / "sub" / "tokenizer.txt").write_text("a b c")
    return d


def upstream_verify(directory: Path, signature: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(MODEL_SIGNING_CLI),
            "verify",
            "key",
            str(directory),
            "--signature",
            str(signature),
            "--public_key",
            str(public_key),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory.parent,
    )


@pytest.mark.slow
def test_signed_directory_verifies_with_upstream_cli_and_ours(
    keys: SigningKeys, model: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    manifest = keys.sign_directory(directory=model, signature_path=sig)
    assert set(manifest.files) == {"weights.bin", "config.json", "sub/tokenizer.txt"}
    assert manifest == directory_manifest(directory=model)
    keys.verify_directory(directory=model, signature_path=sig)
    assert json.loads(sig.read_text())["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    ok = upstream_verify(model, sig, keys.manifest_public_key_path)
    assert ok.returncode == 0, ok.stderr
    assert "Verification succeeded" in ok.stdout
    # the attack: an edited file; both verifiers refuse it
    (model / "weights.bin").write_bytes(os.urandom(4096))
    bad = upstream_verify(model, sig, keys.manifest_public_key_path)
    assert bad.returncode != 0 and "Hash mismatch" in bad.stderr
    with pytest.raises(IntegrityError, match="Hash mismatch"):
        keys.verify_directory(directory=model, signature_path=sig)


def test_signature_inside_the_directory(keys: SigningKeys, model: Path) -> None:
    sig = model / "bastion.sig"
    manifest = keys.sign_directory(directory=model, signature_path=sig)
    assert "bastion.sig" not in manifest.files
    keys.verify_directory(directory=model, signature_path=sig)


@pytest.mark.parametrize("attack", ["extra", "missing", "rename", "symlink", "git"])
def test_directory_attacks_are_integrity_errors(
    keys: SigningKeys, model: Path, tmp_path: Path, attack: str
) -> None:
    sig = tmp_path / "model.sig"
    keys.sign_directory(directory=model, signature_path=sig)
    keys.verify_directory(directory=model, signature_path=sig)  # without the attack: verifies
    if attack == "extra":
        (model / "payload.pkl").write_bytes(b"cos\nsystem\n")
    elif attack == "missing":
        (model / "config.json").unlink()
    elif attack == "rename":
        (model / "config.json").rename(model / "config2.json")
    elif attack == "symlink":
        (model / "link").symlink_to(model / "config.json")
    else:
        (model / ".gitattributes").write_text("* filter=evil")
    with pytest.raises(IntegrityError):
        keys.verify_directory(directory=model, signature_path=sig)


def test_wrong_key_and_damaged_signature(keys: SigningKeys, model: Path, tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    keys.sign_directory(directory=model, signature_path=sig)
    other = SigningKeys.create(tmp_path / "other-home", PASS, kdf=FAST)
    with pytest.raises(IntegrityError):
        verify_directory(directory=model, signature_path=sig, public_key_path=other.manifest_public_key_path)
    bundle = json.loads(sig.read_text())
    raw = bytearray(bundle["dsseEnvelope"]["signatures"][0]["sig"].encode())
    raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = raw.decode()
    bad = tmp_path / "bad.sig"
    bad.write_text(json.dumps(bundle))
    with pytest.raises(IntegrityError):
        keys.verify_directory(directory=model, signature_path=bad)
    garbage = tmp_path / "garbage.sig"
    garbage.write_bytes(b"\x00not a bundle")
    with pytest.raises(IntegrityError):
        keys.verify_directory(directory=model, signature_path=garbage)


def test_sign_refuses_overwrite_and_git_paths(keys: SigningKeys, model: Path, tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    keys.sign_directory(directory=model, signature_path=sig)
    with pytest.raises(Conflict):
        keys.sign_directory(directory=model, signature_path=sig)
    (model / ".git").mkdir()
    with pytest.raises(InvalidInput):
        keys.sign_directory(directory=model, signature_path=tmp_path / "again.sig")


def test_keys_are_stored_encrypted_and_reopen(keys: SigningKeys, tmp_path: Path) -> None:
    home = tmp_path / "home"
    private = (home / "signing" / "manifest-key.pem").read_text()
    assert "ENCRYPTED PRIVATE KEY" in private
    assert (home / "signing" / "tree-key.pem").stat().st_mode & 0o777 == 0o600
    again = SigningKeys.open(home, PASS)
    assert again.public_key_pem() == keys.public_key_pem()
    assert again.manifest_public_key_pem() == keys.manifest_public_key_pem()
    with pytest.raises(WrongPassphrase):
        SigningKeys.open(home, "wrong")
    with pytest.raises(Conflict):
        SigningKeys.create(home, PASS, kdf=FAST)


def test_change_passphrase(keys: SigningKeys, tmp_path: Path) -> None:
    keys.change_passphrase("new passphrase")
    with pytest.raises(WrongPassphrase):
        SigningKeys.open(tmp_path / "home", PASS)
    again = SigningKeys.open(tmp_path / "home", "new passphrase")
    assert again.public_key_pem() == keys.public_key_pem()
    again.verify(b"x", keys.sign(b"x"))


def test_swapped_public_key_file_is_detected(keys: SigningKeys, tmp_path: Path) -> None:
    other = SigningKeys.create(tmp_path / "other", PASS, kdf=FAST)
    (tmp_path / "home" / "signing" / "manifest-key.pub.pem").write_text(other.manifest_public_key_pem())
    with pytest.raises(IntegrityError):
        SigningKeys.open(tmp_path / "home", PASS)


def test_ed25519_sign_verify(keys: SigningKeys) -> None:
    head = b'{"size": 12, "root": "ab"}'
    sig = keys.sign(head)
    keys.verify(head, sig)
    public_only = Ed25519Verifier.from_pem(keys.public_key_pem())
    public_only.verify(head, sig)
    with pytest.raises(IntegrityError):
        public_only.verify(head + b" ", sig)
    flipped = bytearray(sig)
    flipped[0] ^= 1
    with pytest.raises(IntegrityError):
        keys.verify(head, bytes(flipped))
    with pytest.raises(IntegrityError):
        Ed25519Signer.generate().verify(head, sig)
    with pytest.raises(IntegrityError):
        keys.verify(head, b"short")
    with pytest.raises(InvalidInput):
        Ed25519Verifier.from_pem(keys.manifest_public_key_pem())
