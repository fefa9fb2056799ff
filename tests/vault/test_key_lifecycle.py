"""Issue 11 item 7: rotate rewraps every secret wrapped under a KEK; retire refuses while anything uses it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bastion.cli import run
from bastion.crypto.interface import HeldWrap, WrapHolder, WrappedKey
from bastion.crypto.kdf import KdfParams
from bastion.errors import Conflict, KeyNotFound
from bastion.vault import Vault, init_project, open_vault

from .conftest import PASSPHRASE


class FileHolder:
    """A real holder: secrets wrapped under the key ring, kept as JSON files (like watermark keys)."""

    label = "test secret(s)"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)

    def add(self, vault: Vault, key: str, secret: bytes, env: str) -> None:
        wrapped = vault.keys.wrap(env=env, dek=secret, context=f"test:{key}")
        (self.root / f"{key}.json").write_text(wrapped.to_json())

    def secret(self, vault: Vault, key: str) -> bytes:
        wrapped = WrappedKey.from_json((self.root / f"{key}.json").read_text())
        return vault.keys.unwrap(wrapped, context=f"test:{key}")

    def held(self) -> list[HeldWrap]:
        return [
            HeldWrap(key=p.stem, wrapped=WrappedKey.from_json(p.read_text()), context=f"test:{p.stem}")
            for p in sorted(self.root.glob("*.json"))
        ]

    def replace(self, key: str, wrapped: WrappedKey) -> None:
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(wrapped.to_json())
        os.replace(tmp, self.root / f"{key}.json")


@pytest.fixture
def setup(tmp_path: Path, artifact: Path) -> tuple[Vault, FileHolder]:
    holder = FileHolder(tmp_path / "held")
    assert isinstance(holder, WrapHolder)
    v = init_project(
        home=tmp_path / "h",
        passphrase=PASSPHRASE,
        kdf=KdfParams.unsafe_fast(),
        inspectors=[],
        wrap_holders=[holder],
    )
    v.push(artifact, name="m", allow_unsafe=True)
    return v, holder


def test_without_rotation_retire_is_refused_naming_every_user(setup: tuple[Vault, FileHolder]) -> None:
    v, holder = setup
    holder.add(v, "scope-a", os.urandom(32), "dev")
    holder.add(v, "scope-b", os.urandom(32), "prod")
    v.keys.rotate(env="dev")  # a rotation made behind the vault's back: nothing rewrapped
    with pytest.raises(Conflict) as err:
        v.retire_key(env="dev", version=1)
    assert "1 registry data key(s)" in str(err.value) and "1 test secret(s)" in str(err.value)
    assert v.key_users(env="prod", version=1) == {"test secret(s)": 1}


def test_rotate_rewraps_every_holder_then_retire_keeps_everything_working(
    setup: tuple[Vault, FileHolder], tmp_path: Path
) -> None:
    v, holder = setup
    secrets = {"scope-a": os.urandom(32), "wm": os.urandom(32)}
    for k, s in secrets.items():
        holder.add(v, k, s, "dev")
    rotation = v.rotate_keys(env="dev")
    assert (rotation.kek_version, rotation.rewrapped, dict(rotation.other)) == (2, 1, {"test secret(s)": 2})
    assert all(h.wrapped.kek_version == 2 for h in holder.held())
    v.retire_key(env="dev", version=1)
    for k, s in secrets.items():
        assert holder.secret(v, k) == s  # the attack in issue 11: these failed forever after retire
    v.verify("m:1")
    v.pull("m:1", out=tmp_path / "out")
    with pytest.raises(KeyNotFound):
        v.keys.unwrap(
            WrappedKey.from_json(json.dumps({**holder.held()[0].wrapped.to_dict(), "kek_version": 1})),
            context="test:scope-a",
        )


def test_cli_retire_refused_exit_2_names_the_users(
    tmp_path: Path, artifact: Path, monkeypatch, capsys
) -> None:
    home = tmp_path / "h"
    init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[]).close()
    with open_vault(home=home, passphrase=PASSPHRASE, inspectors=[], wrap_holders=[]) as v:
        v.push(artifact, name="m", allow_unsafe=True)
        v.keys.rotate(env="dev")
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)
    assert run(["keys", "retire", "--env", "dev", "--version", "1"]) == 2
    err = capsys.readouterr().err
    assert "still wraps 1 registry data key(s)" in err and "keys rotate" in err
    assert run(["keys", "rotate", "--env", "dev"]) == 0
    assert "rewrapped" in capsys.readouterr().out
    assert run(["keys", "retire", "--env", "dev", "--version", "1"]) == 0


def test_registered_holders_data_watermark_attester_survive_rotate_and_retire(tmp_path: Path) -> None:
    """The installed holders (entry points): data scope keys, watermark keys and the gateway attester key.

    Retire before rotate is refused naming each holder; after rotate → retire, data reveal/protect, the
    watermark key and the attester key all still open (the user report in issue 11 item 7).
    """
    from importlib.metadata import entry_points

    from bastion.data.catalog import scope_keys
    from bastion.serve.attestation import create_software_attester, open_software_attester
    from bastion.watermark.keys import generate_key, load_home_key, store_key

    assert {e.name for e in entry_points(group="bastion.wrap_holders")} >= {
        "data-keys",
        "watermark-keys",
        "attester",
    }
    v = init_project(home=tmp_path / "h", passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast(), inspectors=[])
    token = scope_keys(v.engine, v.keys, scope="pii", env="dev").token("alice@example.com")
    wm = generate_key()
    store_key(wm, home=v.settings.home, provider=v.keys, env="dev")
    attester = create_software_attester(v.settings.home / "serve", keys=v.keys)  # wrapped under prod
    for env, label in (("dev", "data-protection scope key"), ("dev", "watermark key"), ("prod", "attester")):
        with pytest.raises(Conflict, match=label):
            v.retire_key(env=env, version=1)
    for env in ("dev", "prod"):
        v.rotate_keys(env=env)
        v.retire_key(env=env, version=1)
    v.close()
    with open_vault(home=tmp_path / "h", passphrase=PASSPHRASE, inspectors=[]) as v2:
        keys = scope_keys(v2.engine, v2.keys, scope="pii", env="dev", create=False)
        assert keys.reveal(token) == "alice@example.com"  # data reveal
        assert keys.token("alice@example.com") == token  # data protect: same deterministic token
        assert load_home_key(home=v2.settings.home, provider=v2.keys, key_id=wm.key_id).secret == wm.secret
        reopened = open_software_attester(v2.settings.home / "serve", keys=v2.keys)
        assert reopened.public_key().public_bytes_raw() == attester.public_key().public_bytes_raw()
        with pytest.raises(KeyNotFound):
            v2.keys.unwrap(  # the retired KEK really is gone: the old wraps would not open
                WrappedKey.from_json(json.dumps({**json.loads(_first_wrap_json(v2)), "kek_version": 1})),
                context="bastion-data-key:pii",
            )


def _first_wrap_json(v: Vault) -> str:
    from bastion.data.catalog import DataKeyHolder

    return DataKeyHolder(v.engine).held()[0].wrapped.to_json()
