"""``bastion scan`` through the CLI entry point: formats, exit codes, the scan/convert group, a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from bastion.cli import run


def _files(craft, write, tmp_path):
    payload = next(p for p in craft.PAYLOADS if p.name == "subprocess.Popen")
    bad = write("bad/evil.npy", craft.torch_zip(payload.pickle(2)))
    np.save(tmp_path / "good.npy", np.ones(3))
    junk = write("junk.bin", b"\x01\x02\x03\x04junk")
    return bad, tmp_path / "good.npy", junk


def test_exit_codes_and_text(craft, write, tmp_path, capsys) -> None:
    bad, good, junk = _files(craft, write, tmp_path)
    assert run(["scan", str(good)]) == 0
    assert "SAFE" in capsys.readouterr().out
    assert run(["scan", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert "UNSAFE" in out and "subprocess.Popen" in out and "archive/data.pkl" in out
    assert run(["scan", str(junk)]) == 2
    capsys.readouterr()
    assert run(["scan", "--format", "json", str(junk)]) == 2
    junk_doc = json.loads(capsys.readouterr().out)
    assert junk_doc["files"][0]["verdict"] == "error" and junk_doc["files"][0]["safe"] is False
    assert run(["scan", str(tmp_path / "missing.pt")]) == 2
    assert run(["scan", str(bad.parent)]) == 1  # directories are scanned recursively


def test_json_output(craft, write, tmp_path, capsys) -> None:
    bad, good, _ = _files(craft, write, tmp_path)
    assert run(["scan", "--format", "json", str(bad), str(good)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "unsafe" and doc["exit_code"] == 1
    by_name = {f["path"].rsplit("/", 1)[-1]: f for f in doc["files"]}
    assert by_name["good.npy"]["verdict"] == "safe" and by_name["good.npy"]["safe"] is True
    assert doc["safe"] is False
    issue = by_name["evil.npy"]["issues"][0]
    assert issue["callable"] == "subprocess.Popen"
    assert issue["member"] == "archive/data.pkl" and issue["severity"] == "critical"
    assert isinstance(issue["offset"], int)


def _check_sarif(doc: dict) -> None:
    """Structural checks of SARIF 2.1.0 as code-scanning consumes it."""
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = doc["runs"]
    driver = run_["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for rule in driver["rules"]:
        assert isinstance(rule["shortDescription"]["text"], str)
    for result in run_["results"]:
        assert result["ruleId"] in rule_ids
        assert result["level"] in ("none", "note", "warning", "error")
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        for loc in result["locations"]:
            assert isinstance(loc["physicalLocation"]["artifactLocation"]["uri"], str)
            for logical in loc.get("logicalLocations", []):
                assert isinstance(logical["fullyQualifiedName"], str)


def test_sarif_output(craft, write, tmp_path, capsys) -> None:
    bad, good, junk = _files(craft, write, tmp_path)
    assert run(["scan", str(bad), str(good), str(junk), "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    _check_sarif(doc)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"pickle-dangerous-global", "scan-error"}
    assert results[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "archive/data.pkl"
    assert run(["scan", str(good), "--format", "sarif"]) == 0
    _check_sarif(json.loads(capsys.readouterr().out))


def test_convert_subcommand_and_group(tmp_path, capsys) -> None:
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    out = tmp_path / "out.safetensors"
    assert run(["scan", "convert", str(tmp_path / "sd.pt"), "--to", "safetensors", "--out", str(out)]) == 0
    assert out.exists() and "2 tensors" in capsys.readouterr().out
    assert run(["scan", "convert", str(tmp_path / "sd.pt"), "--to", "safetensors"]) == 0
    assert (tmp_path / "sd.safetensors").exists()
    assert run(["scan", str(out)]) == 0
    assert run(["scan", "convert", str(tmp_path / "sd.pt"), "--to", "onnx"]) == 2  # usage error
    assert run(["scan", "--help"]) == 0
    assert "convert" in capsys.readouterr().out


def test_convert_refuses_unsafe(craft, write, tmp_path, capsys) -> None:
    bad, _, _ = _files(craft, write, tmp_path)
    assert run(["scan", "convert", str(bad), "--to", "safetensors", "--out", str(tmp_path / "x.st")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to load") and "subprocess.Popen" in err
    assert not (tmp_path / "x.st").exists()


def test_real_subprocess(craft, write, tmp_path) -> None:
    bad, good, _ = _files(craft, write, tmp_path)
    cmd = [sys.executable, "-c", "from bastion.cli import main; main()", "scan", "--format", "json"]
    done = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["files"][0]["issues"][0]["callable"] == "subprocess.Popen"
    done = subprocess.run([*cmd, str(good)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr
