"""The k8s manifest never runs replicas that cannot share limits (14.16): more than one only with Redis."""

from __future__ import annotations

import json

import pytest

from bastion.cli import run
from bastion.errors import ConfigError
from bastion.serve.k8s import manifest


def _deployment(argv: list[str], capsys) -> dict:
    assert run(["serve", "digits:1", "--deployment", "k8s", "--format", "json", *argv]) == 0
    return next(d for d in json.loads(capsys.readouterr().out) if d["kind"] == "Deployment")


def test_without_redis_one_replica(capsys) -> None:
    dep = _deployment([], capsys)
    assert dep["spec"]["replicas"] == 1
    assert "--redis" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_with_redis_two_replicas_share_it(capsys) -> None:
    dep = _deployment(["--redis", "redis://r:6379/0"], capsys)
    assert dep["spec"]["replicas"] == 2
    assert "--redis" in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_replicas_without_redis_are_refused() -> None:
    with pytest.raises(ConfigError, match="without Redis"):
        manifest(model_ref="digits:1", replicas=2, redis_port=None)
    objects = manifest(model_ref="digits:1", replicas=1, redis_port=None)
    assert next(o for o in objects if o["kind"] == "Deployment")["spec"]["replicas"] == 1


def test_a_pinned_image_passes_check_deploy(capsys, tmp_path) -> None:
    """The manifest bastion writes passes bastion's own deployment check once the image is pinned."""
    pinned = "registry.example.org/bastion-ml@sha256:" + "ab" * 32
    assert run(["serve", "digits:1", "--deployment", "k8s", "--image", pinned]) == 0
    manifest_file = tmp_path / "gateway.yaml"
    manifest_file.write_text(capsys.readouterr().out)
    assert run(["check-deploy", str(manifest_file)]) == 0
    assert run(["serve", "digits:1", "--deployment", "k8s"]) == 0
    manifest_file.write_text(capsys.readouterr().out)
    assert run(["check-deploy", str(manifest_file)]) == 1  # the default tag is flagged, as the README says
    assert "latest tag" in capsys.readouterr().out
