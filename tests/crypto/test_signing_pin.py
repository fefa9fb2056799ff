"""``SigningKeys.unsafe_sign_digests`` builds a model-signing manifest through model-signing's private
``_hashing`` module (there is no public digest constructor). That is safe only on the exact version it was
tested against, so pyproject.toml pins it and this test fails loudly when the installed version moves:
re-run tests/crypto/test_sign_digests.py against the new version (same statement as ``sign_directory``,
verified by the upstream CLI), then move both pins together."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

TESTED = "1.1.1"


def test_model_signing_is_the_version_unsafe_sign_digests_was_tested_against() -> None:
    installed = importlib.metadata.version("model-signing")
    assert installed == TESTED, (
        f"model-signing {installed} is installed; unsafe_sign_digests uses its private _hashing and was "
        f"tested on {TESTED}: re-check it (tests/crypto/test_sign_digests.py), then update both pins"
    )


def test_pyproject_pins_the_same_exact_version() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    pins = re.findall(r'"model-signing([^"]*)"', pyproject)
    assert pins == [f"=={TESTED}"], f"pyproject.toml must pin model-signing=={TESTED}, found {pins}"


def test_the_private_digest_is_the_one_public_manifests_carry(tmp_path: Path) -> None:
    """The private class unsafe_sign_digests builds is the class model-signing's own hashing returns."""
    import model_signing.hashing
    from model_signing._hashing.hashing import Digest

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"weights")
    manifest = model_signing.hashing.Config().hash(tmp_path / "m")
    (item,) = list(manifest.resource_descriptors())
    assert type(item.digest) is Digest and item.digest.algorithm == "sha256"


def test_the_sharp_signer_is_named_as_such() -> None:
    from bastion.crypto.signing import SigningKeys

    assert SigningKeys.sign_digests is SigningKeys.unsafe_sign_digests  # the old name is only an alias
    assert "unsafe_" in SigningKeys.unsafe_sign_digests.__name__
