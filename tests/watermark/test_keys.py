"""Watermark keys: key files, the home key store (wrapped by the key provider), ids and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.crypto.kdf import KdfParams
from bastion.errors import Conflict, IntegrityError, InvalidInput, KeyNotFound
from bastion.vault import init_project
from bastion.watermark import (
    WatermarkKey,
    generate_key,
    home_key_ids,
    load_home_key,
    read_key_file,
    resolve_key,
    store_key,
    write_key_file,
)
from bastion.watermark.keys import key_id_of


def test_key_id_is_deterministic_and_repr_hides_the_secret() -> None:
    secret = bytes(range(32))
    key = WatermarkKey.from_secret(secret)
    assert key.key_id == key_id_of(secret) and len(key.key_id) == 32
    assert secret.hex() not in repr(key)
    assert generate_key().key_id != generate_key().key_id
    with pytest.raises(IntegrityError):
        WatermarkKey(key_id="0" * 32, secret=secret)
    with pytest.raises(InvalidInput):
        WatermarkKey.from_secret(b"short")


def test_key_file_round_trip_and_tampering(tmp_path: Path) -> None:
    key = generate_key()
    path = write_key_file(key, tmp_path / "wm.key")
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    with pytest.raises(Conflict):
        write_key_file(key, path)
    doc = json.loads(path.read_text())
    doc["key"] = generate_key().secret.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError) as err:
        read_key_file(path)
    assert doc["key"] not in str(err.value)
    (tmp_path / "junk").write_text("not json")
    with pytest.raises(InvalidInput):
        read_key_file(tmp_path / "junk")


def test_home_key_store_wraps_with_the_key_provider(tmp_path: Path) -> None:
    vault = init_project(home=tmp_path / "h", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[])
    other = init_project(home=tmp_path / "o", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[])
    try:
        with pytest.raises(KeyNotFound):
            load_home_key(home=vault.settings.home, provider=vault.keys)
        key = generate_key()
        path = store_key(key, home=vault.settings.home, provider=vault.keys, env="dev")
        assert key.secret.hex() not in path.read_text()
        assert home_key_ids(vault.settings.home) == [key.key_id]
        assert load_home_key(home=vault.settings.home, provider=vault.keys) == key
        assert resolve_key(None, vault=vault) == key
        # a key wrapped by another project's key ring does not open here
        target = other.settings.home / "watermark" / "keys"
        target.mkdir(parents=True)
        (target / path.name).write_bytes(path.read_bytes())
        with pytest.raises(IntegrityError):
            load_home_key(home=other.settings.home, provider=other.keys, key_id=key.key_id)
        second = generate_key()
        store_key(second, home=vault.settings.home, provider=vault.keys, env="dev")
        with pytest.raises(InvalidInput, match="--key-id"):
            load_home_key(home=vault.settings.home, provider=vault.keys)
        assert load_home_key(home=vault.settings.home, provider=vault.keys, key_id=second.key_id) == second
    finally:
        vault.close()
        other.close()
