"""``bastion serve``: refuses to start on a tampered artifact or a failed key release; the k8s manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
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
    code = run(["serve", registry_model, "--check", "--home", str(project.home), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: key release denied for digits:") and "package version" in err
    last = project.vault.audit.entries(start=project.vault.audit.size() - 1)[0]
    assert (last.action, last.outcome) == ("serve:key-release", "denied")


def test_untrusted_attester_refuses_to_start(project, registry_model: str, capsys) -> None:
    trust = project.home / "serve" / "trusted_attesters.pem"
    run(["serve", registry_model, "--check", "--home", str(project.home)])  # creates the attester files
    original = trust.read_bytes()
    stranger = Ed25519PrivateKey.generate().public_key()
    trust.write_bytes(
        stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    try:
        capsys.readouterr()
        code = run(["serve", registry_model, "--check", "--home", str(project.home)])
        err = capsys.readouterr().err
    finally:
        trust.write_bytes(original)
    assert code == 1 and "attestation evidence did not verify" in err


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
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "NetworkPolicy"}
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
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
