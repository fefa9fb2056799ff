"""Round-8 fix (issue 20, attack20b F8): ``bastion watermark verify-labels --format json`` listed a consumer
under ``named`` at corrected p < 0.01 while the command exited 0 (it attributes only at p < 1e-6), so a
reader of the JSON accused at the 1 % level. ``named`` now names only what the exit code attributes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bastion.watermark.keys import WatermarkKey, write_key_file
from bastion.watermark.label_evidence import LabelEvidence

KEY = WatermarkKey.from_secret(b"label-verdict-r8-key-of-32-byte!")


def _suspect(tmp_path: Path) -> tuple[Path, Any]:
    from bastion.models import TorchAdapter
    from bastion.models.recipes import MlpConfig, build_mlp, save_model

    module = build_mlp(n_features=4, n_classes=2, hidden=(8,), seed=0)
    directory = tmp_path / "suspect"
    save_model(module, directory, config=MlpConfig(n_features=4, n_classes=2, hidden=(8,)))
    return directory, TorchAdapter(module, input_shape=(4,), n_classes=2)


def _records(x: np.ndarray, pred: np.ndarray, marked: int, hits: int, controls: int, chance: int) -> Any:
    """``marked`` marked rows of which the suspect carries ``hits``; ``controls`` control rows of which it
    matches ``chance``."""
    mx, cx = x[:marked], x[marked : marked + controls]
    ml = np.where(np.arange(marked) < hits, pred[:marked], 1 - pred[:marked])
    cp = pred[marked : marked + controls]
    cl = np.where(np.arange(controls) < chance, cp, 1 - cp)
    return mx, ml.astype(np.int64), cx, cl.astype(np.int64)


def _verify(tmp_path: Path, capsys: Any, suspect: Path, consumers: dict[str, Any]) -> tuple[int, Any]:
    from bastion.cli import run

    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))

    ev = LabelEvidence(key_id=KEY.key_id, n_classes=2, consumers=consumers).sign(KEY)
    path = ev.save(tmp_path / "labels.json")
    key = write_key_file(KEY, tmp_path / "k.key")
    capsys.readouterr()
    args = ["--evidence", str(path), "--model", str(suspect), "--key-file", str(key), "--format", "json"]
    code = run(["watermark", "verify-labels", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_verify_labels_json_names_only_what_its_exit_code_attributes(tmp_path: Path, capsys: Any) -> None:
    suspect, adapter = _suspect(tmp_path)
    x = np.random.default_rng(0).standard_normal((400, 4)).astype(np.float32)
    pred = adapter.predict(x)
    honest = _records(x[200:], pred[200:], marked=4, hits=0, controls=40, chance=20)
    # 4/4 marks carried vs 2/40 controls: Fisher p = 1.1e-4, corrected 2.2e-4 — significant at 1 %, not at
    # the command's 1e-6: exit 0, and the JSON names nobody
    weak = _records(x, pred, marked=4, hits=4, controls=40, chance=2)
    code, doc = _verify(tmp_path, capsys, suspect, {"mallory": weak, "bob": honest})
    assert 1e-6 < doc["best_p_value"] < 0.01, doc
    assert code == 0 and doc["attributed"] is False and doc["named"] == [], doc
    # 12/12 marks vs 2/60 controls: named, and the exit code says so
    strong = _records(x, pred, marked=12, hits=12, controls=60, chance=2)
    code, doc = _verify(tmp_path, capsys, suspect, {"mallory": strong, "bob": honest})
    assert doc["best_p_value"] < 1e-6, doc
    assert code == 1 and doc["attributed"] is True and doc["named"] == ["mallory"], doc
