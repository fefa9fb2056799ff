"""Issue 19, cold attack F5: a tiny model directory must not make ``load_model`` allocate for its config.

The attack: a 150-byte ``config.json`` with huge widths next to a one-tensor safetensors file scans clean, and
``load_model`` built the MLP (20000 wide: 1.7 GiB) before comparing it with the weights.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from bastion.errors import InvalidInput
from bastion.models.recipes import MAX_PARAMETERS, MlpConfig, load_model, save_model

pytestmark = pytest.mark.timeout(60)


def _bomb(root: Path, width: int, tensors: dict[str, np.ndarray] | None = None) -> Path:
    root.mkdir()
    arch = {"n_features": width, "n_classes": 2, "hidden": [width]}
    doc = {"format": "bastion-mlp", "format_version": 1, "architecture": arch}
    (root / "config.json").write_text(json.dumps(doc))
    save_file(tensors or {"x": np.zeros(1, np.float32)}, str(root / "model.safetensors"))
    return root


@pytest.mark.parametrize("width", [20000, 8000, 10**9])
def test_config_larger_than_its_weights_is_refused_before_building(tmp_path, width) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidInput):
        load_model(_bomb(tmp_path / "m", width))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100  # 8000 wide would be 256 MiB of parameters, 20000 wide 1.6 GiB


def test_header_shapes_must_match_the_config(tmp_path) -> None:
    # right names, a shape the config does not declare (and a tensor of the right size in the wrong dtype)
    ok = {"0.weight": np.zeros((8, 4), np.float32), "0.bias": np.zeros(8, np.float32)}
    ok |= {"2.weight": np.zeros((3, 8), np.float32), "2.bias": np.zeros(3, np.float32)}
    bad_shape = dict(ok, **{"0.weight": np.zeros((4, 8), np.float32)})
    bad_dtype = dict(ok, **{"0.bias": np.zeros(8, np.int32)})
    for i, tensors in enumerate((bad_shape, bad_dtype)):
        root = tmp_path / f"m{i}"
        root.mkdir()
        arch = {"n_features": 4, "n_classes": 3, "hidden": [8]}
        (root / "config.json").write_text(
            json.dumps({"format": "bastion-mlp", "format_version": 1, "architecture": arch})
        )
        save_file(tensors, str(root / "model.safetensors"))
        with pytest.raises(InvalidInput, match="do not match"):
            load_model(root)


def test_config_bounds() -> None:
    with pytest.raises(InvalidInput):
        MlpConfig(n_features=4, n_classes=2, hidden=(1 << 17,))
    with pytest.raises(InvalidInput):
        MlpConfig(n_features=4, n_classes=2, hidden=(2,) * 65)
    with pytest.raises(InvalidInput, match="parameters"):
        MlpConfig(n_features=1 << 16, n_classes=2, hidden=(1 << 16,) * 2)
    assert sum(n for _, n in MlpConfig(n_features=4, n_classes=3, hidden=(8,)).shapes().values()) == 67
    assert MAX_PARAMETERS >= 1 << 26


def test_saved_models_still_load(tmp_path) -> None:
    import torch

    from bastion.models.recipes import build_mlp

    cfg = MlpConfig(n_features=5, n_classes=3, hidden=(16, 8))
    m = build_mlp(n_features=5, n_classes=3, hidden=(16, 8), seed=1)
    loaded = load_model(save_model(m, tmp_path / "ok", config=cfg))
    x = torch.randn(4, 5)
    assert torch.allclose(loaded.module(x), m(x))
