"""The PKCS#11 provider against a real SoftHSM2 token created in the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests._support.softhsm import PIN, fresh_token, init_token

from bastion.config import load_settings
from bastion.crypto.interface import KeyProvider, WrappedKey, new_dek, rewrap
from bastion.crypto.keys import init_key_provider, open_key_provider
from bastion.crypto.pkcs11 import Pkcs11KeyProvider
from bastion.errors import ConfigError, Conflict, IntegrityError, KeyNotFound, WrongPassphrase

pytestmark = pytest.mark.softhsm


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, softhsm_module: str) -> tuple[str, str]:
    """A fresh SoftHSM2 token in tmp_path; returns (module, label)."""
    label = fresh_token(tmp_path, monkeypatch)
    return softhsm_module, label


@pytest.fixture
def provider(token: tuple[str, str]) -> Pkcs11KeyProvider:
    module, label = token
    p = Pkcs11KeyProvider(module=module, token_label=label, pin=PIN)
    p.ensure_environments(("dev", "staging", "prod"))
    yield p  # type: ignore[misc]
    p.close()


def test_wrap_unwrap_in_token(provider: Pkcs11KeyProvider) -> None:
    assert isinstance(provider, KeyProvider)
    dek = new_dek()
    w = provider.wrap(env="prod", dek=dek, context="m:1")
    assert w.provider == "pkcs11" and w.kek_version == 1 and len(w.ciphertext) == 12 + 32 + 16
    assert provider.unwrap(WrappedKey.from_json(w.to_json()), context="m:1") == dek
    with pytest.raises(IntegrityError):
        provider.unwrap(w, context="m:2")  # GCM binds the context inside the token
    forged = WrappedKey(provider="pkcs11", env="dev", kek_version=1, ciphertext=w.ciphertext)
    with pytest.raises(IntegrityError):
        provider.unwrap(forged, context="m:1")


def test_keks_are_labelled_sensitive_and_not_extractable(provider: Pkcs11KeyProvider) -> None:
    from pkcs11 import Attribute, ObjectClass
    from pkcs11 import exceptions as p11e

    def inspect(session):  # type: ignore[no-untyped-def]
        keys = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        labels = sorted(k.label for k in keys)
        for k in keys:
            assert k[Attribute.SENSITIVE] and not k[Attribute.EXTRACTABLE]
            with pytest.raises(p11e.AttributeSensitive):
                k[Attribute.VALUE]  # the attack: read the KEK out of the token
        return labels

    assert provider._call(inspect) == ["bastion-kek-dev-v1", "bastion-kek-prod-v1", "bastion-kek-staging-v1"]


def test_rotate_rewrap_retire(provider: Pkcs11KeyProvider) -> None:
    dek = new_dek()
    old = provider.wrap(env="prod", dek=dek, context="m")
    assert provider.rotate(env="prod") == 2 and provider.current_version("prod") == 2
    assert provider.unwrap(old, context="m") == dek
    new = rewrap(provider, old, context="m")
    assert new.kek_version == 2
    with pytest.raises(Conflict):
        provider.retire(env="prod", version=2)
    provider.retire(env="prod", version=1)
    with pytest.raises(KeyNotFound):
        provider.unwrap(old, context="m")
    assert provider.unwrap(new, context="m") == dek
    infos = provider.versions("prod")
    assert [(i.version, i.current, i.retired) for i in infos] == [(1, False, True), (2, True, False)]
    assert infos[1].label == "bastion-kek-prod-v2" and infos[1].created_at
    with pytest.raises(KeyNotFound):
        provider.current_version("qa")
    with pytest.raises(IntegrityError):  # a version the token never had
        provider.unwrap(
            WrappedKey(provider="pkcs11", env="prod", kek_version=7, ciphertext=new.ciphertext), context="m"
        )


def test_other_provider_rescan_does_not_hijack_sessions(
    provider: Pkcs11KeyProvider, token: tuple[str, str], tmp_path: Path
) -> None:
    """A second token appearing later forces a rescan; the first provider must not reuse a dead handle."""
    module, _ = token
    dek = new_dek()
    w = provider.wrap(env="dev", dek=dek, context="c")
    init_token("late-token")
    with Pkcs11KeyProvider(module=module, token_label="late-token", pin=PIN) as late:
        late.ensure_environments(("dev",))
        assert provider.unwrap(w, context="c") == dek
        assert late.unwrap(late.wrap(env="dev", dek=dek, context="c"), context="c") == dek


def test_planted_extractable_key_is_refused(provider: Pkcs11KeyProvider) -> None:
    """An attacker with token access plants an extractable 'v2' KEK to learn future DEKs."""
    from pkcs11 import Attribute, KeyType

    provider._call(
        lambda s: s.generate_key(
            KeyType.AES,
            256,
            label="bastion-kek-dev-v2",
            store=True,
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    )
    with pytest.raises(IntegrityError):
        provider.wrap(env="dev", dek=new_dek(), context="c")
    # without the attack (another environment) wrapping works
    provider.wrap(env="staging", dek=new_dek(), context="c")


def test_planted_imported_key_is_refused(provider: Pkcs11KeyProvider) -> None:
    """Issue 12 item 7: an imported key (value known to the attacker) marked sensitive and non-extractable
    must not become the current KEK: CKA_LOCAL, CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE are false."""
    import os

    from pkcs11 import Attribute, KeyType, ObjectClass

    known = os.urandom(32)
    provider._call(
        lambda s: s.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: known,
                Attribute.LABEL: "bastion-kek-dev-v2",
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
            }
        )
    )
    assert provider.current_version("dev") == 2
    with pytest.raises(IntegrityError, match="generated in the token"):
        provider.wrap(env="dev", dek=new_dek(), context="c")
    provider.wrap(env="staging", dek=new_dek(), context="c")  # the token's own keys still work


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_of_wrap_fails(provider: Pkcs11KeyProvider, pos: int, bit: int) -> None:
    dek = new_dek()
    w = provider.wrap(env="dev", dek=dek, context="c")
    ct = bytearray(w.ciphertext)
    ct[pos % len(ct)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        provider.unwrap(
            WrappedKey(provider="pkcs11", env="dev", kek_version=1, ciphertext=bytes(ct)), context="c"
        )


def test_wrong_pin_and_missing_token(token: tuple[str, str]) -> None:
    module, label = token
    with pytest.raises(WrongPassphrase):
        Pkcs11KeyProvider(module=module, token_label=label, pin="000000").current_version("dev")
    with Pkcs11KeyProvider(module=module, token_label=label, pin=PIN) as good:
        good.ensure_environments(("dev",))
        # the token is now logged in for this process: a wrong PIN still must not get a session
        with pytest.raises(WrongPassphrase):
            Pkcs11KeyProvider(module=module, token_label=label, pin="111111").current_version("dev")
        with Pkcs11KeyProvider(module=module, token_label=label, pin=PIN) as second:
            assert second.current_version("dev") == 1
    with pytest.raises(ConfigError):
        Pkcs11KeyProvider(module=module, token_label="no-such-token", pin=PIN).current_version("dev")
    with pytest.raises(ConfigError):
        Pkcs11KeyProvider(module="/nonexistent/libp11.so", token_label=label, pin=PIN)


def test_open_key_provider_picks_pkcs11(
    token: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, label = token
    home = tmp_path / "home"
    home.mkdir()
    (home / "bastion.toml").write_text(
        f'[keys]\nprovider = "pkcs11"\npkcs11_module = "{module}"\npkcs11_token = "{label}"\n'
        'pkcs11_pin_env = "MY_HSM_PIN"\n'
    )
    s = load_settings(home)
    with pytest.raises(ConfigError, match="MY_HSM_PIN"):
        open_key_provider(s, None)
    monkeypatch.setenv("MY_HSM_PIN", PIN)
    created = init_key_provider(s, None)
    assert isinstance(created, Pkcs11KeyProvider)
    dek = new_dek()
    w = created.wrap(env="staging", dek=dek, context="x")
    opened = open_key_provider(s, None)
    assert isinstance(opened, Pkcs11KeyProvider)
    assert opened.unwrap(w, context="x") == dek
    assert PIN not in (home / "bastion.toml").read_text()
    created.close()
    opened.close()
