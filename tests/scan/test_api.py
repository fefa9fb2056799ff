"""Configuration, directory walking, the deny-list baseline comparison, report objects."""

from __future__ import annotations

import dataclasses
import logging
import os

import pytest

from bastion.cli import run
from bastion.errors import ConfigError, InvalidInput
from bastion.scan import ScanConfig, Verdict, scan


def test_scan_needs_paths() -> None:
    with pytest.raises(InvalidInput):
        scan(paths=[])


def test_config_from_section_rejects_unknown_keys() -> None:
    cfg = ScanConfig.from_section({"max_archive_ratio": 50, "extra_allow": ["mypkg.layers.Block"]})
    assert cfg.max_archive_ratio == 50 and cfg.extra_allow == ("mypkg.layers.Block",)
    with pytest.raises(ConfigError):
        ScanConfig.from_section({"allow_everything": True})
    for bad in ({"extra_allow": "mypkg.Block"}, {"max_archive_ratio": -1}, {"max_archive_bytes": "big"}):
        with pytest.raises(ConfigError):
            ScanConfig.from_section(bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_depth = 99  # type: ignore[misc]


def test_extra_allow_from_bastion_toml(craft, write, tmp_path) -> None:
    body = craft.call(craft.g("mypkg.layers", "Block", 2), craft.s("x"))
    path = write("custom.pkl", craft.wrap(body, 2))
    assert run(["scan", str(path)]) == 1
    home = tmp_path / "home"
    home.mkdir()
    (home / "bastion.toml").write_text('[scan]\nextra_allow = ["mypkg.layers.Block"]\n')
    assert run(["scan", str(path), "--home", str(home)]) == 0
    (home / "bastion.toml").write_text("[scan]\nunknown = 1\n")
    assert run(["scan", str(path), "--home", str(home)]) == 2


def test_directory_symlink_escape(tmp_path, write) -> None:
    outside = write("outside/secret.npy", b"\x93NUMPY")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(outside, model_dir / "weights.npy")
    report = scan(paths=[model_dir])
    assert report.files[0].issues[0].rule == "path-symlink-escape"


def test_deny_list_baseline_misses_what_the_allow_list_catches(craft, write) -> None:
    """The attack against the defence and against a deny-list scanner (picklescan) on the same files."""
    scanner = pytest.importorskip("picklescan.scanner")
    logging.disable(logging.CRITICAL)
    try:
        missed_by_baseline = set()
        for payload in craft.PAYLOADS:
            path = write(f"{payload.name}.pkl", payload.pickle(4))
            assert scan(paths=[path]).verdict is Verdict.unsafe
            try:
                result = scanner.scan_file_path(str(path))
                caught = bool(result.infected_files or result.issues_count)
            except Exception:
                caught = False
            if not caught:
                missed_by_baseline.add(payload.name)
    finally:
        logging.disable(logging.NOTSET)
    # bastion: 40/40; picklescan 1.0.5 misses at least these three (measured: 8 of 40)
    assert {"numpy.__builtins__-stack-global", "extension-code", "build-on-class"} <= missed_by_baseline
    assert len(missed_by_baseline) >= 3


def test_report_properties(craft, write) -> None:
    bad = write("bad.pkl", craft.PAYLOADS[0].pickle(2))
    junk = write("junk.bin", b"\x01\x02\x03")
    report = scan(paths=[bad, junk])
    assert [f.verdict for f in report.files] == [Verdict.unsafe, Verdict.error]
    assert report.verdict is Verdict.unsafe and report.exit_code == 1
    assert len(report.issues) == 1
    only_junk = scan(paths=[junk])
    assert only_junk.verdict is Verdict.error and only_junk.exit_code == 2
