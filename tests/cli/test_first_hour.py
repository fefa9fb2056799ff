"""A newcomer's first hour (issue 14): errors say what to do, help shows the real usage."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from bastion.cli import build_command, extra_for_module, run
from bastion.errors import InvalidInput

NETS = """
import torch.nn as nn


def make_net():
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""


@pytest.fixture
def factory_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``pkg/nets.py:make_net`` and its safetensors weights in the current directory, not on sys.path."""
    import torch
    from safetensors.torch import save_file

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "nets.py").write_text(NETS)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d30.npz", x=rng.random((40, 30), dtype=np.float32), y=rng.integers(0, 10, 40))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "no-home"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    for name in ("pkg", "pkg.nets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_factory_from_cwd_and_shape_mismatch_is_one_line(factory_dir: Path, capsys) -> None:
    code = run(
        [
            *("audit", "--model", "pkg.nets:make_net", "--weights", "w.safetensors"),
            *("--data", "d30.npz", "--out", "r", "--format", "json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    # the factory imported from the current directory (14.8); the shape check names file and counts (14.9)
    assert "d30.npz: 30 features per row, but the model pkg.nets:make_net takes 64" in err
    assert "internal error" not in err and "mat1" not in err


def test_factory_import_failure_says_where_it_looked(factory_dir: Path, capsys) -> None:
    code = run(
        [
            "audit",
            "--model",
            "pkg.nope:make_net",
            "--weights",
            "w.safetensors",
            "--data",
            "d30.npz",
            "--out",
            "r",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "cannot import the model factory pkg.nope:make_net" in captured.err
    assert "PYTHONPATH" in captured.err


def test_a_typo_suggests_once(capsys) -> None:
    assert run(["registr"]) == 2
    assert capsys.readouterr().err.count("Did you mean") == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["scan", "--help"], ["PATH", "--format", "sarif"]),
        (["privacy", "query", "--help"], ["count", "sum", "mean", "histogram", "quantile"]),
        (["audit", "--help"], ["[audit] budget"]),
    ],
)
def test_help_shows_the_real_usage(
    argv: list[str], expected: list[str], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one option's help per line: no word is split across box rows
    assert run(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    for word in expected:
        assert word in out, word


def test_no_help_text_loses_bracketed_words_to_markup() -> None:
    """Rich reads ``[word]`` as a tag: every help text that holds one is escaped."""
    import click

    seen = 0

    def walk(cmd: click.Command) -> None:
        nonlocal seen
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            for i, ch in enumerate(text):
                if ch == "[" and text[i + 1 : i + 2].isalpha():
                    seen += 1
                    assert text[i - 1] == "\\", text
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                walk(sub)

    walk(build_command())
    assert seen > 0


@pytest.mark.parametrize(
    ("module", "command", "extra"),
    [("torch", "train", "torch"), ("torch", "audit", "audit"), ("fastapi", "serve", "serve")],
)
def test_the_extra_of_a_missing_module(module: str, command: str, extra: str) -> None:
    assert extra_for_module(module, command) == extra


BLOCK = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = sys.argv.pop(1)


class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Missing())
from bastion.cli import main

main()
"""


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        ("torch", ["train", "--dataset", "digits", "--epochs", "1", "--out", "m"], "torch"),
        ("torch", ["audit", "--demo", "--out", "r"], "audit"),
        ("fastapi", ["serve", "digits", "--check"], "serve"),
    ],
)
def test_missing_extra_is_one_line_naming_it(
    blocked: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    """The base install (no torch): one line naming the extra, for every command (the handler is generic)."""
    import os
    import subprocess

    env = {**os.environ, "BASTION_HOME": str(tmp_path / "home"), "BASTION_PASSPHRASE": "a long passphrase"}
    env.pop("BASTION_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK, blocked, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert f"pip install 'bastion-ml[{extra}]'" in proc.stderr, proc.stderr


def test_library_warnings_are_one_line_despite_a_root_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Opacus configures the root logger; bastion's warnings still print as ``warning: …``."""
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "no-home"))
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s:%(levelname)s:%(message)s"))
    root.addHandler(handler)
    try:
        model = tmp_path / "m.safetensors"
        from safetensors.numpy import save_file

        save_file({"w": np.zeros(3, dtype=np.float32)}, str(model))
        assert run(["scan", str(model), "--allow", "os:getcwd"]) == 0
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    assert "warning: allow-list extended on the command line: os:getcwd" in err
    assert ":WARNING:" not in err


def test_wrong_path_scan_is_one_line(tmp_path: Path, capsys) -> None:
    assert run(["scan", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no such file or directory: {tmp_path / 'nope.pt'}"]


def test_utf16_data_gets_an_encoding_hint(tmp_path: Path) -> None:
    from bastion.data.io import _check_input

    path = tmp_path / "people.csv"
    path.write_text("name,email\nAda,ada@example.com\n", encoding="utf-16")
    with pytest.raises(InvalidInput, match="UTF-16") as info:
        _check_input(path, "csv")
    assert "iconv -f UTF-16 -t UTF-8" in (info.value.hint or "")
    (tmp_path / "blob.csv").write_bytes(b"\x00\x01\x02binary" * 10)
    with pytest.raises(InvalidInput, match="binary"):
        _check_input(tmp_path / "blob.csv", "csv")


def test_registry_name_typo_suggests_only_readable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "home"
    vault = init_project(home=home, passphrase="a long passphrase", kdf=KdfParams.unsafe_fast())
    for name in ("customers", "secret-model"):
        data = tmp_path / f"{name}.csv"
        data.write_text("a,b\n1,2\n")
        vault.push(data, name=name, kind="dataset")
    _, token = vault.create_token(name="shop", role="consumer", models=["customers"])
    vault.close()
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.setenv("BASTION_PASSPHRASE", "a long passphrase")
    monkeypatch.delenv("BASTION_TOKEN", raising=False)
    assert run(["registry", "show", "custmers:1"]) == 2
    assert "hint: did you mean 'customers'?" in capsys.readouterr().err
    assert run(["registry", "show", "secret-modle"]) == 2
    assert "did you mean 'secret-model'?" in capsys.readouterr().err
    # a consumer granted only 'customers' is never told that 'secret-model' exists
    monkeypatch.setenv("BASTION_TOKEN", token)
    run(["registry", "show", "secret-modle"])
    assert "secret-model" not in capsys.readouterr().err


def test_token_create_names_the_identity_when_no_name_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "home"
    init_project(home=home, passphrase="a long passphrase", kdf=KdfParams.unsafe_fast()).close()
    monkeypatch.setenv("BASTION_HOME", str(home))
    monkeypatch.setenv("BASTION_PASSPHRASE", "a long passphrase")
    monkeypatch.delenv("BASTION_TOKEN", raising=False)
    assert run(["token", "create", "--role", "consumer", "--model", "digits"]) == 0
    captured = capsys.readouterr()
    assert "token for consumer-digits (consumer)" in captured.err
    assert captured.out.strip().startswith("bst_")
