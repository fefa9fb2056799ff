"""Issue 11 item 6: ``serve --deployment k8s`` emits the server and the gateway as separate workloads, and the
repo's Dockerfile builds the image they name. The YAML is parsed, never grepped as text only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.cli import run
from bastion.governance.deploy import check_dockerfile
from bastion.serve.k8s import GATEWAY_NAME, SERVER_NAME, manifest

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
PINNED = "registry.example.org/bastion-ml@sha256:" + "ab" * 32


def _docs(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    assert run(["serve", "fraud@prod", "--deployment", "k8s", "--image", PINNED, *extra]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


def _by(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _walk(obj: Any) -> list[str]:
    """Every string (keys and values) anywhere in an object."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (str(k), *_walk(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _walk(v)]
    return [str(obj)]


def test_server_and_gateway_are_separate_workloads(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--redis", "redis://r:6379/0")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        [
            ("StatefulSet", SERVER_NAME),
            ("Service", SERVER_NAME),
            ("NetworkPolicy", SERVER_NAME),
            ("Deployment", GATEWAY_NAME),
            ("Service", GATEWAY_NAME),
            ("NetworkPolicy", GATEWAY_NAME),
        ]
    )
    server = _by(docs, "StatefulSet", SERVER_NAME)["spec"]
    (sc,) = server["template"]["spec"]["containers"]
    assert sc["args"][0] == "server" and "--insecure" not in sc["args"]
    env = {e["name"]: e for e in sc["env"]}
    assert env["BASTION_PASSPHRASE"]["valueFrom"]["secretKeyRef"]["name"] == f"{SERVER_NAME}-keyring"
    assert server["volumeClaimTemplates"][0]["metadata"]["name"] == "home"  # the database lives here only
    assert server["replicas"] == 1


def test_no_passphrase_and_no_owner_token_in_any_gateway_object(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--redis", "redis://r:6379/0")
    gateway = [d for d in docs if d["metadata"]["name"] == GATEWAY_NAME]
    assert len(gateway) == 3
    strings = [s for d in gateway for s in _walk(d)]
    assert not [s for s in strings if re.search(r"(?i)passphrase|keyring|pkcs11|deployer|owner", s)]
    dep = _by(docs, "Deployment", GATEWAY_NAME)["spec"]["template"]["spec"]
    (c,) = dep["containers"]
    # its only credential: the workload token, from a Secret, never a literal value
    assert c["env"] == [
        {
            "name": "BASTION_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": f"{GATEWAY_NAME}-token", "key": "token"}},
        }
    ]
    assert "BASTION_HOME" not in strings  # no home at all
    assert not [v for v in dep["volumes"] if "persistentVolumeClaim" in v]
    secrets = {v["secret"]["secretName"] for v in dep["volumes"] if "secret" in v}
    # certificates and its own attester key, never the key ring
    assert secrets == {f"{GATEWAY_NAME}-tls", f"{SERVER_NAME}-ca", f"{GATEWAY_NAME}-attester"}
    args = c["args"]
    assert args[:2] == ["serve", "fraud@prod"]
    assert args[args.index("--server") + 1] == f"https://{SERVER_NAME}.bastion.svc"
    assert "--ca" in args and "--insecure" not in args and "--tls-cert" in args and "--attester-key" in args
    # the instructions printed with the YAML create a gateway-role token scoped to this one model
    assert run(["serve", "fraud@prod", "--deployment", "k8s"]) == 0
    header = capsys.readouterr().out.split("---", 1)[0]
    assert "--role gateway --model fraud --env prod" in header and "deployer" not in header


def test_hardening_of_both_pods(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--redis", "redis://r:6379/0")
    for kind, name in (("StatefulSet", SERVER_NAME), ("Deployment", GATEWAY_NAME)):
        pod = _by(docs, kind, name)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"]
        assert not sc["allowPrivilegeEscalation"] and not sc["privileged"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert tmp["emptyDir"]["medium"] == "Memory"  # the only writable path; plaintext never on disk


def test_network_policies(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--redis", "redis://r:6379/0", "--admin-cidr", "10.8.0.0/16")
    server = _by(docs, "NetworkPolicy", SERVER_NAME)["spec"]
    assert server["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = server["ingress"]
    sources = rule["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}}} in sources
    assert {"ipBlock": {"cidr": "10.8.0.0/16"}} in sources
    assert all(s for s in sources)  # no empty peer (which would admit everything)
    assert [e.get("to") for e in server["egress"]] == [None]  # DNS only
    gateway = _by(docs, "NetworkPolicy", GATEWAY_NAME)["spec"]
    targets = [
        e["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for e in gateway["egress"]
        if "to" in e
    ]
    assert targets == [SERVER_NAME, "bastion-redis"]  # and DNS: nothing else
    dns = [e for e in gateway["egress"] if "to" not in e]
    assert dns == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]


def test_the_manifests_pass_check_deploy_once_pinned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(["serve", "fraud@prod", "--deployment", "k8s", "--image", PINNED]) == 0
    out = tmp_path / "bastion.yaml"
    out.write_text(capsys.readouterr().out)
    assert run(["check-deploy", str(out)]) == 0


def test_pkcs11_pin_reaches_the_server_only() -> None:
    objects = manifest(model_ref="fraud@prod", image=PINNED, pkcs11_pin_env="HSM_PIN", redis_port=None)
    server = next(o for o in objects if o["kind"] == "StatefulSet")
    names = [e["name"] for e in server["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "HSM_PIN" in names
    assert "HSM_PIN" not in json.dumps([o for o in objects if o["metadata"]["name"] == GATEWAY_NAME])


def _stages(text: str) -> list[list[str]]:
    """The Dockerfile's logical lines (continuations joined, comments dropped), split by FROM."""
    lines, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multistage_pinned_nonroot_without_build_tools() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = _stages(text)
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].split()[1]
        assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert int(users[-1].split(":")[0]) == 10001  # the manifests' runAsUser
    body = "\n".join(final[1:]).lower()
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get install", "pip install"):
        assert tool not in body, tool
    assert "copy --from=build" in body  # the finished environment, not the build
    assert re.search(r"(?m)^\s*entrypoint \[\"bastion\"\]", body)
    assert "pythondontwritebytecode=1" in body.replace(" ", "")  # nothing written under a read-only root
    assert check_dockerfile(text, path="Dockerfile") == []  # bastion's own deployment rules
    assert (DOCKERFILE.parent / ".dockerignore").read_text().count(".venv") == 1


def test_no_secret_value_anywhere_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    """The server's objects *reference* the key-ring Secret; no manifest holds a passphrase or token value."""
    assert run(["serve", "fraud@prod", "--deployment", "k8s", "--pkcs11-pin-env", "HSM_PIN"]) == 0
    text = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert not re.search(r"bst_[0-9a-f]{16,}\.", text)  # no bastion token of any identity
    for d in docs:
        spec = d["spec"].get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            for e in c.get("env", []):
                if re.search(r"(?i)passphrase|token|pin|secret", e["name"]):
                    assert set(e) == {"name", "valueFrom"} and "secretKeyRef" in e["valueFrom"], e
    server_env = {
        e["name"]
        for d in docs
        if d["kind"] == "StatefulSet"
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert "BASTION_TOKEN" not in server_env  # the server needs no token: it is the owner of its home


def test_server_egress_is_explicit(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--server-egress", "10.0.4.0/24:5432", "--server-egress", "10.9.9.9/32:443")
    egress = _by(docs, "NetworkPolicy", SERVER_NAME)["spec"]["egress"]
    assert egress[1:] == [
        {"to": [{"ipBlock": {"cidr": "10.0.4.0/24"}}], "ports": [{"protocol": "TCP", "port": 5432}]},
        {"to": [{"ipBlock": {"cidr": "10.9.9.9/32"}}], "ports": [{"protocol": "TCP", "port": 443}]},
    ]
    for bad in ("0.0.0.0/0:443", "10.0.0.1:80x", "db:5432", "10.0.4.1/24:5432"):
        assert run(["serve", "fraud@prod", "--deployment", "k8s", "--server-egress", bad]) == 2
        assert capsys.readouterr().err.startswith("error: --server-egress")
