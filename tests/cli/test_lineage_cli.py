"""Issue 14 item 2: every command that creates an artifact records lineage back to its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests._support.cli_home import project_home

from bastion.cli import run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_home(tmp_path, monkeypatch)  # bastion's own inspectors: pushes are scanned


def _lineage(ref: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert run(["lineage", ref, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _jobs(doc: dict) -> list[str]:
    return sorted(e["job"]["name"] for e in doc["events"])


def _sources(doc: dict) -> list[tuple[str, str]]:
    return sorted((s["namespace"], s["name"]) for s in doc["sources"])


def test_train_out_then_push_links_the_version_to_the_builtin_data(
    home: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "m"
    assert run(["train", "--dataset", "digits", "--epochs", "1", "--out", str(out)]) == 0
    assert run(["registry", "push", str(out), "--name", "digits", "--env", "dev"]) == 0
    doc = _lineage("digits", capsys)
    assert _jobs(doc) == ["privacy.train", "registry.push"]
    assert _sources(doc) == [("bastion-builtin", "digits")]
    push = next(e for e in doc["events"] if e["job"]["name"] == "registry.push")
    (src,) = push["inputs"]
    train = next(e for e in doc["events"] if e["job"]["name"] == "privacy.train")
    (written,) = train["outputs"]
    # the directory push read is the one train wrote: same name and the same weights digest
    assert src["name"] == written["name"] == str(out.resolve())
    digest = src["facets"]["contentDigest"]["digest"]
    assert digest == written["facets"]["contentDigest"]["digest"]
    import hashlib

    assert digest == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()

    # watermark embed from the registry version: a new version whose lineage reaches digits:1 and the data
    assert run(["watermark", "embed", "--model", "digits:1", "--push", "digits-wm", "--epochs", "1"]) == 0
    doc = _lineage("digits-wm", capsys)
    assert _jobs(doc) == ["privacy.train", "registry.push", "watermark.embed"]
    embed = next(e for e in doc["events"] if e["job"]["name"] == "watermark.embed")
    assert {i["name"] for i in embed["inputs"]} == {"digits:1", "digits"}
    assert [o["name"] for o in embed["outputs"]] == ["digits-wm:1"]


def test_pushing_a_plain_file_records_its_digest(home: Path, tmp_path: Path, capsys) -> None:
    f = tmp_path / "weights.npy"
    import numpy as np

    np.save(f, np.arange(10))
    assert run(["registry", "push", str(f), "--name", "arr", "--kind", "model"]) == 0
    doc = _lineage("arr:1", capsys)
    assert _jobs(doc) == ["registry.push"]
    (src,) = doc["sources"]
    assert src["name"] == str(f.resolve()) and src["namespace"] == "file"
    import hashlib

    assert src["digest"] == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
