"""Issue 20 round 13 (cold review attack20f, finding F1): a copy made from several accounts' aggregated
answers still proves where it came from.

K unlinked accounts ask the same rows; the thief trains on the per-class minimum or median of the K answers.
Each account's consumer wave is on its own class and direction, so the minimum and the median keep the
un-bumped values and no consumer is named (round 12: min-of-3 digits copy p 0.2-1, as the innocent copy's).
The deployment wave (:mod:`bastion.watermark._provenance`) is the same on every account's answer to a row, so
the aggregate keeps it: the evidence's provenance test says "trained on this deployment's answers" (p < 1e-6),
and ``bastion watermark verify --consumers`` says so (exit 1). A copy trained on the clean answers to the same
rows does not verify, nor does the aggregate copy when the deployment wave is off (the knob this adds)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bastion.cli import run
from bastion.watermark.consumer import ConsumerEvidence, ConsumerWatermark
from bastion.watermark.keys import WatermarkKey, write_key_file

KEY = WatermarkKey.from_secret(b"round-13-provenance-test-key-32b")
FIT = {"n_classes": 10, "epochs": 30, "batch_size": 64, "lr": 3e-3}


@pytest.fixture(scope="module")
def victim() -> Any:
    """A digits victim, 2,000 natural rows (the 450-row test split, with repeats) and its clean answers."""
    import torch

    from bastion.adversarial.attacks.membership import train_mlp
    from bastion.models.data import load_dataset

    ds = load_dataset("digits")
    module = train_mlp(ds.x_train, ds.y_train, hidden=(64,), seed=0, **FIT)

    def clean(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(module(torch.from_numpy(np.asarray(x, np.float32))), 1).double().numpy()

    xm = ds.x_test[np.random.default_rng(3).integers(0, len(ds.x_test), 2000)]
    return SimpleNamespace(ds=ds, clean=clean, xm=xm)


def _copy(v: Any, soft: np.ndarray) -> Any:
    from bastion.adversarial.attacks.membership import train_mlp

    soft = soft / soft.sum(axis=1, keepdims=True)
    return train_mlp(v.xm, soft.argmax(1), hidden=(128,), seed=0, soft_targets=soft, **FIT)


def _proba(module: Any) -> Any:
    import torch

    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(module(torch.from_numpy(np.asarray(x, np.float32))), 1).double().numpy()

    return fn


def _evidence(v: Any, wm: ConsumerWatermark, k: int) -> ConsumerEvidence:
    """The K accounts' probes (the rows they asked) and 6 honest consumers' (300 natural rows each)."""
    rng = np.random.default_rng(5)
    probes = {f"jwt:acct{i}": np.unique(v.xm, axis=0) for i in range(k)}
    probes |= {f"jwt:honest{h}": v.ds.x_test[rng.integers(0, len(v.ds.x_test), 300)] for h in range(6)}
    return wm.evidence({c: (x, v.clean(x)) for c, x in probes.items()})


def _wm(v: Any, key: WatermarkKey = KEY, **kw: Any) -> ConsumerWatermark:
    from bastion.serve.reference import projection_scale

    scale = projection_scale(v.ds.x_train)
    return ConsumerWatermark(key, n_features=64, n_classes=10, scale=scale, cycles=0.5, **kw)


def _aggregate(v: Any, wm: ConsumerWatermark, how: str, k: int = 3) -> np.ndarray:
    answers = np.stack([wm.apply(f"jwt:acct{i}", v.xm, v.clean(v.xm)) for i in range(k)])
    return answers.min(axis=0) if how == "min" else np.median(answers, axis=0)


@pytest.mark.parametrize("how", ["min", "median"])
def test_a_copy_of_three_accounts_aggregated_answers_proves_its_provenance(victim: Any, how: str) -> None:
    wm = _wm(victim)
    stolen = _proba(_copy(victim, _aggregate(victim, wm, how)))
    found = _evidence(victim, wm, 3).attribute(key=KEY, predict_proba=stolen)
    assert found.provenance_p_value < 1e-6, (found.provenance_z, found.consumer, found.z)
    assert found.provenance_probes > 0 and "provenance_p_value" in found.to_dict()
    if found.p_value < 1e-6 or found.group_p_value < 1e-6:  # a consumer named is one of the three accounts
        assert set(found.group or (found.consumer,)) <= {f"jwt:acct{i}" for i in range(3)}


@pytest.mark.parametrize("secret", [b"A" * 32, b"B" * 32, b"C" * 32])
def test_a_copy_of_the_clean_answers_to_the_same_rows_does_not_verify(victim: Any, secret: bytes) -> None:
    key = WatermarkKey.from_secret(secret)
    wm = _wm(victim, key)
    innocent = _proba(_copy(victim, victim.clean(victim.xm)))
    found = _evidence(victim, wm, 3).attribute(key=key, predict_proba=innocent)
    assert found.provenance_p_value >= 1e-3 and found.p_value >= 1e-3, found.provenance_z


def test_without_the_deployment_wave_the_aggregate_copy_is_not_traced(victim: Any) -> None:
    """The knob: the same min-of-3 theft against answers without the deployment wave (the round-12 scheme)."""
    wm = _wm(victim, deployment_eps=0.0)
    stolen = _proba(_copy(victim, _aggregate(victim, wm, "min")))
    found = _evidence(victim, wm, 3).attribute(key=KEY, predict_proba=stolen)
    assert found.provenance_p_value >= 1e-3 and found.p_value >= 1e-6


def test_verify_consumers_reports_the_deployment_provenance(
    victim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bastion watermark verify --consumers``: the min-of-3 copy is owned (exit 1) by its provenance."""
    import bastion.cli._watermark_suspect as suspect_cli

    wm = _wm(victim)
    stolen = _proba(_copy(victim, _aggregate(victim, wm, "min")))
    evidence = _evidence(victim, wm, 3).save(tmp_path / "evidence.json")
    key_file = write_key_file(KEY, tmp_path / "wm.key")
    monkeypatch.setattr(
        suspect_cli, "_local_suspect", lambda ref, vault: (SimpleNamespace(predict_proba=stolen), None)
    )
    argv = [
        "watermark",
        "verify",
        "--model",
        str(tmp_path),
        "--consumers",
        str(evidence),
        "--key-file",
        str(key_file),
    ]
    assert run([*argv, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["owned"] is True and doc["provenance"] is True and doc["provenance_p_value"] < 1e-6
    assert run(argv) == 1
    assert "trained on this deployment's answers" in capsys.readouterr().out
