"""Key-provider conformance (issue 13 item 5): the contract of :class:`bastion.crypto.interface.KeyProvider`,
run for every implementation — the local key ring and PKCS#11 on a real SoftHSM2 token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._support.softhsm import PIN, fresh_token

from bastion.crypto.interface import DEK_SIZE, KeyProvider, WrappedKey, new_dek, rewrap
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keyring import LocalKeyRing
from bastion.errors import Conflict, IntegrityError, InvalidInput, KeyNotFound

ENVS = ("dev", "staging", "prod")


def _keyring(tmp_path: Path, request: pytest.FixtureRequest) -> KeyProvider:
    return LocalKeyRing.create(
        tmp_path / "keyring.json", "conformance passphrase", kdf=KdfParams.unsafe_fast()
    )


def _pkcs11(tmp_path: Path, request: pytest.FixtureRequest) -> KeyProvider:
    from bastion.crypto.pkcs11 import Pkcs11KeyProvider

    module = request.getfixturevalue("softhsm_module")
    monkeypatch = request.getfixturevalue("monkeypatch")
    label = fresh_token(tmp_path, monkeypatch)
    provider = Pkcs11KeyProvider(module=module, token_label=label, pin=PIN)
    provider.ensure_environments(ENVS)
    request.addfinalizer(provider.close)
    return provider


@pytest.fixture(
    params=[
        pytest.param(_keyring, id="keyring"),
        pytest.param(_pkcs11, id="pkcs11-softhsm", marks=pytest.mark.softhsm),
    ]
)
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyProvider]:
    yield request.param(tmp_path, request)


def test_is_a_key_provider_with_every_environment(provider: KeyProvider) -> None:
    assert isinstance(provider, KeyProvider) and provider.name
    for env in ENVS:
        infos = provider.versions(env)
        assert [i.version for i in infos] == [1] and infos[0].current and not infos[0].retired
        assert provider.current_version(env) == 1


def test_wrap_unwrap_round_trip_through_json(provider: KeyProvider) -> None:
    for env in ENVS:
        dek = new_dek()
        w = provider.wrap(env=env, dek=dek, context=b"m\x00:1")
        assert w.env == env and w.kek_version == 1 and w.provider == provider.name
        assert dek not in w.ciphertext
        assert provider.unwrap(WrappedKey.from_json(w.to_json()), context=b"m\x00:1") == dek
        assert provider.unwrap(w, context="m\x00:1") == dek  # str context is its UTF-8 bytes


def test_two_wraps_of_one_key_differ(provider: KeyProvider) -> None:
    dek = new_dek()
    assert (
        provider.wrap(env="dev", dek=dek, context="c").ciphertext
        != provider.wrap(env="dev", dek=dek, context="c").ciphertext
    )


def test_wrong_associated_data_fails_with_integrity_error(provider: KeyProvider) -> None:
    w = provider.wrap(env="dev", dek=new_dek(), context="model:1")
    with pytest.raises(IntegrityError):
        provider.unwrap(w, context="model:2")
    with pytest.raises(IntegrityError):  # moved to another environment
        provider.unwrap(WrappedKey(provider.name, "prod", 1, w.ciphertext), context="model:1")
    with pytest.raises(IntegrityError):  # another provider's wrap
        provider.unwrap(WrappedKey("other", "dev", 1, w.ciphertext), context="model:1")
    with pytest.raises((IntegrityError, KeyNotFound)):  # a KEK version it never had
        provider.unwrap(WrappedKey(provider.name, "dev", 9, w.ciphertext), context="model:1")


@pytest.mark.parametrize("where", [0, 12, -1])
def test_tampered_wrap_fails_with_integrity_error(provider: KeyProvider, where: int) -> None:
    w = provider.wrap(env="staging", dek=new_dek(), context="c")
    bad = bytearray(w.ciphertext)
    bad[where] ^= 0x01
    with pytest.raises(IntegrityError):
        provider.unwrap(WrappedKey(w.provider, w.env, w.kek_version, bytes(bad)), context="c")
    with pytest.raises(IntegrityError):
        provider.unwrap(WrappedKey(w.provider, w.env, w.kek_version, w.ciphertext[:-1]), context="c")


def test_unknown_environment_and_bad_key_size(provider: KeyProvider) -> None:
    with pytest.raises(KeyNotFound):
        provider.wrap(env="nowhere", dek=new_dek(), context="c")
    with pytest.raises(InvalidInput):
        provider.wrap(env="dev", dek=b"\x00" * (DEK_SIZE - 1), context="c")


def test_rotate_rewrap_retire(provider: KeyProvider) -> None:
    dek = new_dek()
    old = provider.wrap(env="prod", dek=dek, context="c")
    assert provider.rotate(env="prod") == 2 and provider.current_version("prod") == 2
    assert provider.current_version("dev") == 1  # other environments untouched
    assert provider.unwrap(old, context="c") == dek  # old versions still unwrap until retired
    new = rewrap(provider, old, context="c")
    assert new.kek_version == 2 and provider.unwrap(new, context="c") == dek
    with pytest.raises(Conflict):
        provider.retire(env="prod", version=2)  # the current version cannot be retired
    provider.retire(env="prod", version=1)
    infos = {i.version: i for i in provider.versions("prod")}
    assert infos[1].retired and not infos[1].current and infos[2].current
    with pytest.raises(KeyNotFound):
        provider.unwrap(old, context="c")  # retired: unreadable
    with pytest.raises(KeyNotFound):
        provider.retire(env="prod", version=1)
    with pytest.raises(KeyNotFound):
        provider.retire(env="prod", version=7)
    assert provider.unwrap(new, context="c") == dek
