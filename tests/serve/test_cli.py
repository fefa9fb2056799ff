"""``bastion serve``: refuses to start on a tampered artifact or a failed key release; the k8s manifest."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.cli import run

PASSPHRASE = "serve tests passphrase"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PASSPHRASE", PASSPHRASE)


def test_check_verifies_releases_and_loads(project, registry_model: str, capsys) -> None:
    code = run(["serve", registry_model, "--check", "--home", str(project.home), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out)
    assert summary["model"] == "digits" and summary["ready"] is True
    last = project.vault.audit.entries(start=project.vault.audit.size() - 5)
    assert any(e.action == "serve:key-release" and e.outcome == "ok" for e in last)


def test_failed_key_release_refuses_to_start(project, registry_model: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[serve.key_release]\nallowed_package_versions = ["99.0.0"]\n', encoding="utf-8")
    args = ["serve", registry_model, "--home", str(project.home), "--config", str(config)]
    assert run([*args, "--approve"]) == 0  # approved, but for another package version than this one
    capsys.readouterr()
    try:
        code = run([*args, "--check"])
        err = capsys.readouterr().err
    finally:
        assert run(["serve", registry_model, "--home", str(project.home), "--approve"]) == 0
    assert code == 1
    assert err.startswith("error: key release denied for digits:") and "package version" in err
    last = _last(project, "serve:key-release")
    assert (last.action, last.outcome) == ("serve:key-release", "denied")


def _last(project, action: str):
    entries = project.vault.audit.entries(start=max(0, project.vault.audit.size() - 10))
    return [e for e in entries if e.action == action][-1]


def test_release_is_bound_to_the_approved_config_not_the_running_one(
    project, registry_model: str, tmp_path: Path, capsys
) -> None:
    """The config digest used to be compared with itself: any configuration got the key. Now a config the
    admin did not approve is denied, and the released config digest is in the audit entry."""
    loose = tmp_path / "loose.toml"
    loose.write_text('[serve.rate_limit.per_role]\nconsumer = "100000/minute"\n', encoding="utf-8")
    args = ["serve", registry_model, "--check", "--home", str(project.home)]
    assert run([*args, "--config", str(loose)]) == 1
    err = capsys.readouterr().err
    assert "key release denied" in err and "configuration digest differs" in err
    denied = _last(project, "serve:key-release")
    assert denied.outcome == "denied" and len(denied.details["config_digest"]) == 64
    assert run([*args]) == 0  # the approved (default) configuration is released
    released = _last(project, "serve:key-release")
    assert released.outcome == "ok" and released.details["config_digest"] != denied.details["config_digest"]
    assert released.details["policy_digest"].startswith("sha256:")


def test_deleting_or_replacing_serve_files_never_regenerates_trust(
    project, registry_model: str, capsys
) -> None:
    """Deleting home/serve/*attest* used to create a fresh key and trust it. Now the trust anchors come from
    the signed release policy: deleted or replaced files make the release fail until an admin re-approves."""
    serve_dir = project.home / "serve"
    args = ["serve", registry_model, "--check", "--home", str(project.home)]
    saved = {p.name: p.read_bytes() for p in serve_dir.iterdir() if p.is_file()}
    try:
        for name in ("attester_ed25519.sealed.json", "release_policy.json"):
            (serve_dir / name).unlink()
            capsys.readouterr()
            assert run(args) == 1, name
            assert "key release denied" in capsys.readouterr().err or name.startswith("attester")
            assert not (serve_dir / name).exists()  # nothing regenerated
            (serve_dir / name).write_bytes(saved[name])
        # A policy signed by another key (someone who can write the home but lacks the passphrase).
        stranger = Ed25519PrivateKey.generate()
        doc = json.loads(saved["release_policy.json"])
        doc["signature"] = base64.b64encode(stranger.sign(base64.b64decode(doc["policy"]))).decode()
        (serve_dir / "release_policy.json").write_text(json.dumps(doc), encoding="utf-8")
        capsys.readouterr()
        assert run(args) == 1
        assert "signature does not verify" in capsys.readouterr().err
    finally:
        for name, data in saved.items():
            (serve_dir / name).write_bytes(data)
    assert run(args) == 0


def test_only_an_admin_may_approve(project, registry_model: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BASTION_TOKEN", project.tokens["erin"])  # a data scientist
    assert run(["serve", registry_model, "--approve", "--home", str(project.home)]) == 2
    assert "may not approve" in capsys.readouterr().err


def test_tampered_artifact_refuses_to_start(project, digits, capsys) -> None:
    blobs = project.vault.settings.blob_dir
    before = {p for p in blobs.rglob("*") if p.is_file()}
    version = project.vault.push(digits.directory, name="digits-tampered")
    new = sorted(p for p in blobs.rglob("*") if p.is_file() and p not in before)
    assert new
    victim = max(new, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(victim, 0o600)
    victim.write_bytes(bytes(data))
    from bastion.serve.server import ServeOptions, approve_gateway

    approve_gateway(ServeOptions(model_ref=version.ref, home=str(project.home)), passphrase=PASSPHRASE)
    capsys.readouterr()
    code = run(["serve", version.ref, "--check", "--home", str(project.home)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error:") and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--insecure", "--host", "0.0.0.0"],
        ["--tls-cert", "c.pem"],
        ["--workers", "2"],
        ["--deployment", "nomad"],
    ],
)
def test_unsafe_or_broken_options_are_refused(args: list[str], capsys) -> None:
    assert run(["serve", "digits", *args]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_k8s_manifest_is_hardened(capsys) -> None:
    assert run(["serve", "digits:1", "--deployment", "k8s", "--redis", "redis://r:6379/0"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    kinds = {d["kind"]: d for d in docs if d["metadata"]["name"] == "bastion-gateway"}
    assert set(kinds) == {"Deployment", "Service", "NetworkPolicy"}  # the server's are separate objects
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert "--insecure" not in container["args"] and "--tls-cert" in container["args"]
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert run(["serve", "digits:1", "--deployment", "k8s", "--format", "json"]) == 0
    assert [d["kind"] for d in json.loads(capsys.readouterr().out)] == [
        "StatefulSet",
        "Service",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
