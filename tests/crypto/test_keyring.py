"""The local key ring: passphrase, wrapping, rotation, retirement, tampering, concurrency."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import load_settings
from bastion.crypto.interface import KekInfo, KeyProvider, WrappedKey, new_dek, rewrap
from bastion.crypto.kdf import KdfParams
from bastion.crypto.keyring import LocalKeyRing
from bastion.crypto.keys import init_key_provider, open_key_provider
from bastion.errors import (
    ConfigError,
    Conflict,
    CryptoError,
    IntegrityError,
    InvalidInput,
    KeyNotFound,
    WrongPassphrase,
)

PASS = "correct horse battery staple"
FAST = KdfParams(time_cost=1, memory_kib=256)


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyRing:
    return LocalKeyRing.create(tmp_path / "keyring.json", PASS, kdf=FAST)


def test_is_a_key_provider(ring: LocalKeyRing) -> None:
    assert isinstance(ring, KeyProvider)
    assert ring.environments() == ["dev", "staging", "prod"]
    assert [ring.current_version(e) for e in ("dev", "staging", "prod")] == [1, 1, 1]


def test_wrap_unwrap_and_json_round_trip(ring: LocalKeyRing, tmp_path: Path) -> None:
    dek = new_dek()
    w = ring.wrap(env="prod", dek=dek, context=b"model-a:1")
    assert w.provider == "local" and w.env == "prod" and w.kek_version == 1
    assert dek not in w.ciphertext
    again = LocalKeyRing.open(tmp_path / "keyring.json", PASS)
    assert again.unwrap(WrappedKey.from_json(w.to_json()), context="model-a:1") == dek


def test_context_and_env_are_bound(ring: LocalKeyRing) -> None:
    dek = new_dek()
    w = ring.wrap(env="dev", dek=dek, context="a:1")
    with pytest.raises(IntegrityError):
        ring.unwrap(w, context="a:2")
    forged = WrappedKey(provider="local", env="staging", kek_version=1, ciphertext=w.ciphertext)
    with pytest.raises(IntegrityError):
        ring.unwrap(forged, context="a:1")
    for env, version in (("qa", 1), ("dev", 9)):  # an environment or version the ring never had
        with pytest.raises(IntegrityError):
            ring.unwrap(
                WrappedKey(provider="local", env=env, kek_version=version, ciphertext=w.ciphertext),
                context="a:1",
            )
    with pytest.raises(IntegrityError):
        ring.unwrap(
            WrappedKey(provider="pkcs11", env="dev", kek_version=1, ciphertext=w.ciphertext), context="a:1"
        )
    with pytest.raises(KeyNotFound):
        ring.wrap(env="qa", dek=dek, context="a:1")
    with pytest.raises(InvalidInput):
        ring.wrap(env="dev", dek=b"short", context="a:1")


def test_wrong_passphrase_is_one_clear_error(ring: LocalKeyRing, tmp_path: Path) -> None:
    with pytest.raises(WrongPassphrase) as info:
        LocalKeyRing.open(tmp_path / "keyring.json", "Tr0ub4dor&3")
    assert str(info.value) == "the key ring did not open: wrong passphrase"
    assert "Tr0ub4dor" not in str(info.value)


def test_missing_ring_and_no_overwrite(ring: LocalKeyRing, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalKeyRing.open(tmp_path / "nope.json", PASS)
    with pytest.raises(Conflict):
        LocalKeyRing.create(tmp_path / "keyring.json", PASS, kdf=FAST)


def test_file_is_private_and_has_no_plaintext_keys(ring: LocalKeyRing, tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    assert path.stat().st_mode & 0o777 == 0o600
    kek = ring._keks[("prod", 1)]
    assert kek.hex() not in path.read_text() and kek not in path.read_bytes()


def test_rotate_rewrap_retire(ring: LocalKeyRing) -> None:
    dek = new_dek()
    old = ring.wrap(env="prod", dek=dek, context="m:1")
    assert ring.rotate(env="prod") == 2
    assert ring.current_version("prod") == 2 and ring.current_version("dev") == 1
    assert ring.unwrap(old, context="m:1") == dek  # nothing becomes unreadable on rotation
    new = rewrap(ring, old, context="m:1")
    assert new.kek_version == 2 and ring.unwrap(new, context="m:1") == dek
    with pytest.raises(Conflict):
        ring.retire(env="prod", version=2)
    ring.retire(env="prod", version=1)
    with pytest.raises(KeyNotFound):
        ring.unwrap(old, context="m:1")  # a retired version is gone: rewrap first
    assert ring.unwrap(new, context="m:1") == dek
    with pytest.raises(KeyNotFound):
        ring.retire(env="prod", version=1)
    infos = ring.versions("prod")
    assert [(i.version, i.current, i.retired) for i in infos] == [(1, False, True), (2, True, False)]
    assert KekInfo.from_json(infos[1].to_json()) == infos[1]
    assert infos[1].label == "bastion-kek-prod-v2"


def test_promotion_rewraps_under_another_env(ring: LocalKeyRing) -> None:
    dek = new_dek()
    w = ring.wrap(env="dev", dek=dek, context="m:1")
    p = rewrap(ring, w, context="m:1", env="prod")
    assert p.env == "prod" and ring.unwrap(p, context="m:1") == dek


def test_other_instance_sees_rotation_and_retirement(ring: LocalKeyRing, tmp_path: Path) -> None:
    other = LocalKeyRing.open(tmp_path / "keyring.json", PASS)
    dek = new_dek()
    w1 = other.wrap(env="dev", dek=dek, context="c")
    ring.rotate(env="dev")
    assert other.current_version("dev") == 2
    w2 = other.wrap(env="dev", dek=dek, context="c")
    assert w2.kek_version == 2 and ring.unwrap(w2, context="c") == dek
    ring.retire(env="dev", version=1)
    with pytest.raises(KeyNotFound):
        other.unwrap(w1, context="c")  # the stale in-memory KEK is not used after retirement


def test_change_passphrase(ring: LocalKeyRing, tmp_path: Path) -> None:
    dek = new_dek()
    w = ring.wrap(env="staging", dek=dek, context="x")
    ring.change_passphrase("a brand new passphrase", kdf=KdfParams(name="scrypt", memory_kib=1024))
    with pytest.raises(WrongPassphrase):
        LocalKeyRing.open(tmp_path / "keyring.json", PASS)
    reopened = LocalKeyRing.open(tmp_path / "keyring.json", "a brand new passphrase")
    assert reopened.unwrap(w, context="x") == dek
    assert ring.unwrap(w, context="x") == dek


def test_injectable_clock(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = LocalKeyRing.create(tmp_path / "k.json", PASS, kdf=FAST, envs=("dev",), now=lambda: when)
    assert r.versions("dev")[0].created_at == when.isoformat()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_of_keyring_file_fails_closed(
    tmp_path_factory: pytest.TempPathFactory, pos: int, bit: int
) -> None:
    base = tmp_path_factory.mktemp("flip")
    path = base / "keyring.json"
    LocalKeyRing.create(path, PASS, kdf=FAST, envs=("dev", "prod"))
    raw = bytearray(path.read_bytes())
    raw[pos % len(raw)] ^= 1 << bit
    path.write_bytes(bytes(raw))
    with pytest.raises((CryptoError, IntegrityError)):
        LocalKeyRing.open(path, PASS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_of_wrapped_key_fails(ring: LocalKeyRing, pos: int, bit: int) -> None:
    dek = new_dek()
    w = ring.wrap(env="prod", dek=dek, context="m:1")
    ct = bytearray(w.ciphertext)
    ct[pos % len(ct)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        ring.unwrap(
            WrappedKey(provider=w.provider, env=w.env, kek_version=1, ciphertext=bytes(ct)), context="m:1"
        )
    text = bytearray(w.to_json().encode())
    text[pos % len(text)] ^= 1 << bit
    with pytest.raises(IntegrityError):  # every field: provider, env, version, ciphertext, JSON syntax
        ring.unwrap(WrappedKey.from_json(bytes(text)), context="m:1")


def test_structural_tampering_is_integrity_error(ring: LocalKeyRing, tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    doc = json.loads(path.read_text())
    doc["envs"]["prod"]["current"] = 7  # an attacker pointing wraps at a key they control
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        LocalKeyRing.open(path, PASS)
    path.write_text("not json")
    with pytest.raises(IntegrityError):
        LocalKeyRing.open(path, PASS)


def _rotate_in_child(path: str, env: str) -> None:
    LocalKeyRing.open(path, PASS).rotate(env=env)


def test_concurrent_rotations_do_not_lose_updates(ring: LocalKeyRing, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_rotate_in_child, args=(str(tmp_path / "keyring.json"), "dev")) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ring.current_version("dev") == 4
    assert [v.version for v in ring.versions("dev")] == [1, 2, 3, 4]


def test_open_key_provider_from_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "bastion.toml").write_text('[keys]\nprovider = "local"\nkdf = "argon2id"\n')
    s = load_settings(home)
    created = init_key_provider(s, PASS, kdf=FAST)
    dek = new_dek()
    w = created.wrap(env="dev", dek=dek, context="c")
    opened = open_key_provider(s, PASS)
    assert opened.unwrap(w, context="c") == dek
    with pytest.raises(ConfigError):
        open_key_provider(s, None)
    (home / "bastion.toml").write_text('[keys]\nprovider = "vault9000"\n')
    with pytest.raises(ConfigError):
        open_key_provider(load_settings(home), PASS)


def test_kdf_parameters_are_validated() -> None:
    with pytest.raises(InvalidInput):
        KdfParams(name="md5").validate()
    with pytest.raises(InvalidInput):
        KdfParams(name="scrypt", memory_kib=1000).validate()
    with pytest.raises(InvalidInput):
        KdfParams(memory_kib=1 << 30).validate()


# --- issue 12 item 5: a key ring an attacker edits cannot make open slow or crash it ---


@pytest.mark.parametrize(
    "kdf",
    [
        {"name": "argon2id", "time_cost": 64, "memory_kib": 1 << 20, "parallelism": 16},  # the 68 s attack
        {"name": "argon2id", "time_cost": 10, "memory_kib": 1 << 20, "parallelism": 1},
        {"name": "argon2id", "time_cost": 10, "memory_kib": 256 * 1024, "parallelism": 1},  # cost bound
        {"name": "scrypt", "time_cost": 1, "memory_kib": 1 << 20, "parallelism": 1},
    ],
)
def test_expensive_kdf_parameters_are_refused_before_deriving(
    ring: LocalKeyRing, tmp_path: Path, kdf: dict[str, object]
) -> None:
    path = tmp_path / "keyring.json"
    doc = json.loads(path.read_text())
    doc["kdf"] = kdf
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):  # not "wrong passphrase", and no derivation at that cost
        LocalKeyRing.open(path, PASS)


@pytest.mark.parametrize("kind", ["dev-zero", "symlink", "fifo", "oversized", "directory"])
def test_keyring_that_is_not_a_small_regular_file_is_integrity_error(
    ring: LocalKeyRing, tmp_path: Path, kind: str
) -> None:
    import os

    path = tmp_path / "keyring.json"
    real = path.read_bytes()
    path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(real)
        path.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "oversized":
        path.write_bytes(real[:-1] + b" " * (2 << 20) + b"}")
    else:
        path.mkdir()
    with pytest.raises(IntegrityError):
        LocalKeyRing.open(path, PASS)
