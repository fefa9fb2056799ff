"""``bastion train --out DIR`` (save_model) against a planted link and a permissive umask (review F5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bastion.errors import InvalidInput
from bastion.models.recipes import CONFIG_FILE, WEIGHTS_FILE, MlpConfig, build_mlp, load_model, save_model


def _model():
    return build_mlp(n_features=4, n_classes=2, hidden=(3,), seed=0)


def test_planted_link_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "model"
    out.mkdir()
    (out / CONFIG_FILE).symlink_to(victim)
    (out / WEIGHTS_FILE).symlink_to(victim)
    save_model(_model(), out, config=MlpConfig(n_features=4, n_classes=2, hidden=(3,)))
    assert victim.read_text() == "precious\n"
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        assert stat.S_ISREG(os.lstat(out / name).st_mode)
    assert load_model(out).config.n_features == 4


def test_out_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "model").symlink_to(target)
    with pytest.raises(InvalidInput, match="not a directory"):
        save_model(_model(), tmp_path / "model", config=MlpConfig(n_features=4, n_classes=2, hidden=(3,)))
    assert not any(target.iterdir())


def test_private_modes_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        out = save_model(
            _model(), tmp_path / "a" / "b", config=MlpConfig(n_features=4, n_classes=2, hidden=(3,))
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(out.parent).st_mode) == 0o700
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600
