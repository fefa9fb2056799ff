"""``bastion check-deploy``: one test per deployment rule, a compliant deployment, and the OSV image check."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from bastion.cli import run
from bastion.governance.deploy import check_deploy
from bastion.governance.osv import check_sbom, dpkg_compare, load_advisories, sbom_from_rootfs

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = Path(__file__).parents[1] / "schemas" / "sarif-2.1.0" / "sarif-schema-2.1.0.json"
LIVE_KEY = "sk-live-" + "9f8e7d6c5b4a39281726354a"  # split: this file holds no key
DIGEST = "@sha256:" + "a" * 64

GOOD_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "fraud"}},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "containers": [
                    {
                        "name": "gateway",
                        "image": "registry.example/bastion-gateway:1.0" + DIGEST,
                        "args": ["serve", "--api-key-file", "/run/secrets/key"],
                        "securityContext": {
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                        },
                        "env": [
                            {
                                "name": "OPENAI_API_KEY",
                                "valueFrom": {"secretKeyRef": {"name": "k", "key": "k"}},
                            }
                        ],
                        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            },
        }
    },
}
NETPOL = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "d", "namespace": "ml"},
}


def _write(tmp_path: Path, docs: list[dict[str, Any]], name: str = "deploy.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump_all(docs))
    return p


def _container(d: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = d["spec"]["template"]["spec"]["containers"][0]
    return c


def _mutations() -> list[tuple[str, Any]]:
    def privileged(d: dict[str, Any]) -> None:
        _container(d)["securityContext"]["privileged"] = True

    def root(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0}

    def writable(d: dict[str, Any]) -> None:
        del _container(d)["securityContext"]["readOnlyRootFilesystem"]

    def host_path(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/var/log"}})

    def caps(d: dict[str, Any]) -> None:
        _container(d)["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}

    def latest(d: dict[str, Any]) -> None:
        _container(d)["image"] = "vllm/vllm-openai:latest"

    def env_secret(d: dict[str, Any]) -> None:
        _container(d)["env"] = [{"name": "UPSTREAM", "value": LIVE_KEY}]  # innocuous name: value is matched

    def no_auth(d: dict[str, Any]) -> None:
        _container(d)["args"] = ["jupyter", "lab", "--ServerApp.token=''"]

    def model_rw(d: dict[str, Any]) -> None:
        _container(d)["volumeMounts"][0]["readOnly"] = False

    def gpu(d: dict[str, Any]) -> None:
        d["spec"]["template"]["spec"]["hostIPC"] = True
        _container(d)["resources"] = {"limits": {"nvidia.com/gpu": 1}}

    return [
        ("BST-D001", privileged),
        ("BST-D002", root),
        ("BST-D003", writable),
        ("BST-D004", host_path),
        ("BST-D005", caps),
        ("BST-D007", latest),
        ("BST-D008", env_secret),
        ("BST-D009", no_auth),
        ("BST-D010", model_rw),
        ("BST-D011", gpu),
    ]


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {"type": "LoadBalancer", "selector": {"app": "fraud"}},
}


def test_compliant_deployment_passes(tmp_path: Path) -> None:
    report = check_deploy(paths=[_write(tmp_path, [GOOD_DEPLOYMENT, NETPOL, SERVICE])])
    assert report.issues == () and report.ok


@pytest.mark.parametrize(("rule", "mutate"), _mutations(), ids=[r for r, _ in _mutations()])
def test_each_manifest_rule(tmp_path: Path, rule: str, mutate: Any) -> None:
    d = copy.deepcopy(GOOD_DEPLOYMENT)
    mutate(d)
    report = check_deploy(paths=[_write(tmp_path, [d, NETPOL, SERVICE])])
    assert {i.rule.id for i in report.issues} == {rule}
    assert all(LIVE_KEY not in i.message for i in report.issues)


def test_missing_network_policy(tmp_path: Path) -> None:
    report = check_deploy(paths=[_write(tmp_path, [GOOD_DEPLOYMENT])])
    assert [i.rule.id for i in report.issues] == ["BST-D006"] and report.ok  # a warning, not a failure


def test_dockerfile_rules(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:3.11\n"
        f"ENV OPENAI_API_KEY={LIVE_KEY} \\\n    LOG_LEVEL=info\n"
        "EXPOSE 8888\n"
        'CMD ["jupyter", "notebook", "--NotebookApp.token=\'\'"]\n'
    )
    found = sorted((i.rule.id, i.line) for i in check_deploy(paths=[bad]).issues)
    assert found == [("BST-D002", None), ("BST-D007", 1), ("BST-D008", 2), ("BST-D009", 5)]
    good = tmp_path / "good.Dockerfile"
    good.write_text(
        f"FROM python:3.11-slim{DIGEST} AS build\nRUN pip install bastion-ml\n"
        f"FROM python:3.11-slim{DIGEST}\nCOPY --from=build /usr /usr\nUSER 10001\n"
        'CMD ["bastion", "serve", "--api-key-file", "/run/secrets/k"]\n'
    )
    assert check_deploy(paths=[good]).issues == ()


def test_cli_check_deploy_sarif_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = copy.deepcopy(GOOD_DEPLOYMENT)
    _container(d)["env"] = [{"name": "OPENAI_API_KEY", "value": LIVE_KEY}]
    path = _write(tmp_path, [d, NETPOL])
    assert run(["check-deploy", str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (issue,) = doc["issues"]
    assert issue["rule"] == "BST-D008" and issue["target"] == str(path) and LIVE_KEY not in json.dumps(doc)
    assert "live API secret key" in issue["message"]
    assert run(["check-deploy", str(path), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    validator = jsonschema_rs.Draft4Validator(json.loads(SCHEMA.read_text()), validate_formats=True)
    assert list(validator.iter_errors(sarif)) == []
    assert run(["check-deploy", str(_write(tmp_path, [GOOD_DEPLOYMENT, NETPOL], "ok.yaml"))]) == 0
    assert run(["check-deploy", str(tmp_path / "nope.yaml")]) == 2


def test_dpkg_version_order() -> None:
    assert dpkg_compare("3.0.11-1~deb12u1", "3.0.13-1~deb12u1") == -1
    assert dpkg_compare("1.0~rc1", "1.0") == -1
    assert dpkg_compare("1:1.0", "2.0") == 1
    assert dpkg_compare("1.2.13.dfsg-1", "1.2.13.dfsg-1") == 0
    assert dpkg_compare("5.2.15-2+b2", "5.2.15-2") == 1


def test_image_sbom_against_local_osv_advisories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sbom = sbom_from_rootfs(FIXTURES / "rootfs")
    purls = sorted(c["purl"] for c in sbom["components"])
    assert purls == [
        "pkg:deb/debian/bash@5.2.15-2%2Bb2",
        "pkg:deb/debian/openssl@3.0.11-1~deb12u1",
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1",
        "pkg:pypi/numpy@2.4.0",
        "pkg:pypi/requests@2.19.0",
    ]
    report = check_sbom(sbom, advisories=load_advisories(FIXTURES / "osv"), source="image")
    got = sorted(i.evidence["id"] for i in report.issues)
    assert got == ["DSA-TEST-0001", "PYSEC-2018-28"]  # numpy 2.4.0 and zlib1g at the fixed version: clean
    msg = next(i.message for i in report.issues if i.evidence["id"] == "PYSEC-2018-28")
    assert msg == "PyPI requests 2.19.0: PYSEC-2018-28 (CVE-2018-18074), fixed in 2.20.0"
    manifest = _write(tmp_path, [GOOD_DEPLOYMENT, NETPOL])
    out = tmp_path / "sbom.json"
    args = [
        "check-deploy",
        str(manifest),
        "--rootfs",
        str(FIXTURES / "rootfs"),
        "--advisories",
        str(FIXTURES / "osv"),
    ]
    assert run([*args, "--sbom-out", str(out), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert sorted(i["evidence"]["id"] for i in doc["issues"]) == ["DSA-TEST-0001", "PYSEC-2018-28"]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text()) is None
    assert (
        run(["check-deploy", str(manifest), "--sbom", str(out), "--advisories", str(FIXTURES / "osv")]) == 1
    )


def test_checkov_sarif_is_merged_as_an_advisory_engine(tmp_path: Path) -> None:
    """A SARIF file checkov 3.3.30 wrote for fixtures/checkov-input.* (recorded; checkov is no test dep)."""
    from bastion.governance._checkov import issues_from_sarif
    from bastion.governance.findings import CheckReport, merge

    doc = json.loads((FIXTURES / "checkov-results.sarif").read_text())
    theirs = issues_from_sarif(doc)
    assert theirs and all(i.rule.tool == "checkov" and i.rule.level == "warning" for i in theirs)
    assert {"CKV_K8S_14", "CKV_K8S_43", "CKV_K8S_23"} <= {i.rule.id for i in theirs}
    ours = check_deploy(paths=[FIXTURES / "checkov-input.yaml"])
    merged = merge([ours, CheckReport(issues=tuple(theirs), checked=())])
    sarif = merged.to_sarif()
    validator = jsonschema_rs.Draft4Validator(json.loads(SCHEMA.read_text()), validate_formats=True)
    assert list(validator.iter_errors(sarif)) == []
    assert {r["tool"]["driver"]["name"] for r in sarif["runs"]} == {"bastion", "checkov"}
    assert merged.ok is ours.ok  # checkov is advisory: bastion's rules decide the exit code


CHECKOV = os.environ.get("BASTION_TEST_CHECKOV", "/tmp/checkov-venv/bin/checkov")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHECKOV).is_file(), reason="checkov not installed in its own venv")
def test_live_checkov_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = copy.deepcopy(GOOD_DEPLOYMENT)
    _container(d)["env"] = [{"name": "UPSTREAM", "value": LIVE_KEY}]
    path = _write(tmp_path, [d, NETPOL])
    assert run(["check-deploy", str(path), "--checkov", CHECKOV, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_tool = {(i["tool"], i["rule"]) for i in doc["issues"]}
    assert ("bastion", "BST-D008") in by_tool and any(t == "checkov" for t, _ in by_tool)
    assert not any(
        t == "checkov" and r.startswith("CKV_SECRET") for t, r in by_tool
    )  # checkov misses the key
    assert LIVE_KEY not in json.dumps(doc)
