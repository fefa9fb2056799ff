"""Push / pull / verify / promote / annotate / keys on a real home (SQLite, local key ring, file blobs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.errors import AccessDenied, Conflict, DependencyMissing, InvalidInput, NotFound, UnsafeArtifact
from bastion.vault import SIGNATURE_FILE, ArtifactRef, Vault, init_project, public_key_path


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_pull_roundtrip_and_upstream_verification(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    v = vault.push(
        artifact, name="fraud", tags={"team": "risk"}, metadata={"acc": 0.93}, classification="internal"
    )
    assert (v.name, v.version, v.env, v.kind) == ("fraud", 1, "dev", "model")
    assert {f.path for f in v.files} == {"weights.bin", "sub/config.json", "empty.txt"}
    out = tmp_path / "restored"
    vault.pull("fraud:1", out=out)
    pulled = read_tree(out)
    assert pulled.pop(SIGNATURE_FILE)
    assert pulled == read_tree(artifact)
    assert public_key_path(out).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    # the pulled directory verifies with the upstream OpenSSF model_signing CLI as well
    cli = Path(sys.executable).with_name("model_signing")
    args = [str(cli), "verify", "key", str(out), "--signature", str(out / SIGNATURE_FILE)]
    args += ["--public_key", str(public_key_path(out))]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    # ... and the upstream verifier catches an edited file
    (out / "weights.bin").write_bytes(b"edited")
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode != 0


def test_blobs_hold_no_plaintext(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="m")
    plain = (artifact / "weights.bin").read_bytes()
    for blob in vault.settings.blob_dir.rglob("*"):
        if blob.is_file():
            assert plain[:64] not in blob.read_bytes()


def test_versions_increment_and_are_immutable(vault: Vault, make_artifact, tmp_path: Path) -> None:
    a = make_artifact(tmp_path / "a", seed=1)
    b = make_artifact(tmp_path / "b", seed=2)
    assert vault.push(a, name="m").version == 1
    assert vault.push(b, name="m").version == 2
    assert vault.push(a / "weights.bin", name="m").version == 3  # a single file is an artifact too
    assert [f.path for f in vault.show("m:3").files] == ["weights.bin"]
    assert vault.show("m").version == 3
    assert vault.show("m:1").manifest_digest != vault.show("m:2").manifest_digest
    out = tmp_path / "o1"
    vault.pull("m:1", out=out)
    assert (out / "sub" / "config.json").read_text() == '{"seed": 1}'
    with pytest.raises(Conflict):
        vault.push(a, name="m", kind="dataset")  # a name keeps its kind


def test_dataset_kind_and_list(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="customers", kind="dataset", classification="confidential")
    vault.push(artifact, name="fraud")
    assert [v.ref for v in vault.list(kind="dataset")] == ["customers:1"]
    assert {v.ref for v in vault.list()} == {"customers:1", "fraud:1"}
    with pytest.raises(InvalidInput):
        vault.list(kind="weights")


def test_refs_and_lookup_errors(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="fraud")
    assert ArtifactRef.parse("fraud@prod").env == "prod"
    for bad in ("fraud:0", "fraud:x", "fraud@moon", "bad name", "", "../etc"):
        with pytest.raises(InvalidInput):
            ArtifactRef.parse(bad)
    with pytest.raises(NotFound, match="no artifact"):
        vault.show("nope")
    with pytest.raises(NotFound, match="no version 7"):
        vault.pull("fraud:7", out=tmp_path / "x")
    with pytest.raises(NotFound, match="prod"):
        vault.show("fraud@prod")
    assert not (tmp_path / "x").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    with pytest.raises(Conflict):
        vault.pull("fraud", out=busy)


def test_promote_rewraps_and_env_refs(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="fraud")
    vault.push(artifact, name="fraud")
    assert vault.promote("fraud:1", to="staging").env == "staging"
    assert vault.promote("fraud:1", to="prod").env == "prod"
    assert vault.show("fraud@prod").version == 1
    assert vault.show("fraud@dev").version == 2
    with pytest.raises(InvalidInput, match="forward"):
        vault.promote("fraud:1", to="dev")
    vault.pull("fraud@prod", out=tmp_path / "p")
    assert vault.verify("fraud:1").env == "prod"


def test_rotate_and_retire_keys(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="a")
    vault.push(artifact, name="b", env="prod")
    with pytest.raises(Conflict):
        vault.retire_key(env="dev", version=1)  # still wraps a DEK
    rot = vault.rotate_keys(env="dev")
    assert (rot.kek_version, rot.rewrapped) == (2, 1)
    vault.retire_key(env="dev", version=1)
    vault.verify("a:1")
    vault.pull("a:1", out=tmp_path / "a")  # nothing became unreadable
    vault.pull("b:1", out=tmp_path / "b")
    infos = {(k.env, k.version): k for k in vault.list_keys()}
    assert infos[("dev", 1)].retired and infos[("dev", 2)].current
    assert vault.push(artifact, name="a").version == 2  # new pushes use the new KEK


def test_annotations_are_append_only(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="fraud")
    vault.annotate("fraud:1", namespace="privacy", data={"epsilon": 2.5, "delta": 1e-5})
    vault.annotate("fraud:1", namespace="audit", data={"robust_accuracy": 0.41})
    vault.annotate("fraud:1", namespace="privacy", data={"epsilon": 3.0})
    assert [a.data["epsilon"] for a in vault.annotations("fraud:1", namespace="privacy")] == [2.5, 3.0]
    assert len(vault.show("fraud:1").annotations) == 3
    with pytest.raises(InvalidInput):
        vault.annotate("fraud:1", namespace="Bad Space", data={})
    with pytest.raises(InvalidInput):
        vault.annotate("fraud:1", namespace="x", data={"v": float("nan")})


def test_materialize_deletes_plaintext_on_exit(vault: Vault, artifact: Path) -> None:
    vault.push(artifact, name="fraud")
    with vault.materialize("fraud") as path:
        assert (path / "weights.bin").read_bytes() == (artifact / "weights.bin").read_bytes()
    assert not path.exists()


def test_inspectors_run_and_allow_unsafe(vault: Vault, artifact: Path, home: Path, opener) -> None:
    (artifact / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UnsafeArtifact):
        vault.push(artifact, name="evil")
    assert vault.push(artifact, name="evil", allow_unsafe=True).version == 1  # admin override, logged
    entries = [e for e in vault.audit.entries() if e.target.startswith("evil")]
    assert entries[0].outcome == "denied"


def test_push_refuses_without_inspector_unless_admin_allows_unsafe(tmp_path: Path, artifact: Path) -> None:
    from bastion.crypto.kdf import KdfParams

    v = init_project(home=tmp_path / "h", passphrase="pw", kdf=KdfParams.unsafe_fast(), inspectors=[])
    with pytest.raises(DependencyMissing):
        v.push(artifact, name="m")
    assert v.push(artifact, name="m", allow_unsafe=True).version == 1
    assert any(e.details.get("allow_unsafe") for e in v.audit.entries() if e.action == "registry:push")
    _, tok = v.create_token(name="eng", role="ml-engineer")
    from bastion.vault import open_vault

    eng = open_vault(home=tmp_path / "h", passphrase="pw", token=tok, inspectors=[])
    with pytest.raises(AccessDenied, match="allow_unsafe"):
        eng.push(artifact, name="m", allow_unsafe=True)
    with pytest.raises(DependencyMissing):
        eng.push(artifact, name="m")
    eng.close()
    v.close()


def test_reserved_and_unsafe_inputs(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    (artifact / SIGNATURE_FILE).write_text("x")
    with pytest.raises(InvalidInput, match="reserved"):
        vault.push(artifact, name="m")
    (artifact / SIGNATURE_FILE).unlink()
    (artifact / "link").symlink_to(artifact / "empty.txt")
    with pytest.raises(InvalidInput, match="symbolic"):
        vault.push(artifact, name="m")
    with pytest.raises(NotFound):
        vault.push(tmp_path / "missing", name="m")
    with pytest.raises(InvalidInput):
        vault.push(artifact, name="m", env="moon")


def test_every_action_is_in_the_verified_audit_log(vault: Vault, artifact: Path, tmp_path: Path) -> None:
    vault.push(artifact, name="fraud")
    vault.pull("fraud:1", out=tmp_path / "o")
    vault.verify("fraud:1")
    vault.promote("fraud:1", to="staging")
    actions = [e.action for e in vault.audit.entries()]
    for action in ("project:init", "registry:push", "registry:pull", "registry:verify", "registry:promote"):
        assert action in actions
    assert vault.log_verify().size == len(actions)
    proof = vault.log_prove(2)
    assert proof.tree_size == len(actions)
    vault.log_consistency(1, len(actions))


def test_range_read_decrypts_only_touched_segments(vault: Vault, tmp_path: Path) -> None:
    d = tmp_path / "big"
    d.mkdir()
    data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: four 1 MiB segments
    (d / "w.bin").write_bytes(data)
    vault.push(d, name="big")
    r = vault.read_range("big:1", path="w.bin", offset=(1 << 20) + 123, length=1 << 20)
    assert r.data == data[(1 << 20) + 123 : (2 << 20) + 123]
    assert r.segments_decrypted == 2
    assert vault.read_range("big:1", path="w.bin", offset=1 << 20, length=1 << 20).segments_decrypted == 1
    with pytest.raises(NotFound):
        vault.read_range("big:1", path="nope", offset=0, length=1)


def test_bundle_signature_check_needs_the_right_key(vault: Vault, artifact: Path) -> None:
    import sqlalchemy as sa
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from bastion.errors import IntegrityError
    from bastion.store.tables import versions
    from bastion.vault.registry import verify_bundle_signature

    vault.push(artifact, name="m")
    with vault.engine.connect() as conn:
        bundle = bytes(conn.execute(sa.select(versions.c.bundle)).scalar_one())
    verify_bundle_signature(bundle, vault.signer.manifest_public_key_pem())
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(IntegrityError):
        verify_bundle_signature(bundle, pem)
