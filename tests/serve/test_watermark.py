"""The API watermark end to end: ``bastion serve`` config → marked answers → marks exported by an auditor →
a surrogate trained on the gateway's answers is identified by ``bastion watermark verify --marks``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bastion.cli import run as cli_run
from bastion.errors import ConfigError
from bastion.serve import ServeOptions, build_gateway
from bastion.serve.server import approve_gateway

PASSPHRASE = "serve tests passphrase"  # the session project's (tests/serve/conftest.py)


def _surrogate(x: np.ndarray, y: np.ndarray) -> Any:
    """A surrogate that fits its training answers exactly (1-nearest-neighbour), as a model adapter."""
    from sklearn.neighbors import KNeighborsClassifier

    from bastion.models import SklearnAdapter

    return SklearnAdapter(KNeighborsClassifier(n_neighbors=1).fit(x, y))


@pytest.mark.slow
def test_surrogate_trained_on_gateway_answers_is_identified_by_the_marks(
    kit, project, digits, registry_model: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    from bastion.watermark.keys import generate_key, write_key_file

    key_file = write_key_file(generate_key(), tmp_path / "api.key")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[serve.api_watermark]\nenabled = true\nkey = "{key_file}"\nrate = 0.005\n'
        '[serve.rate_limit.per_role]\nconsumer = "100000/minute"\n'
        '[serve.rate_limit.rows_per_role]\nconsumer = "1000000/minute"\n'
        '[serve.monitor]\naction = "alert"\n',
        encoding="utf-8",
    )
    options = ServeOptions(model_ref=registry_model, home=str(project.home), config_file=str(config))
    approve_gateway(options, passphrase=PASSPHRASE)
    gateway = build_gateway(options, passphrase=PASSPHRASE)
    assert gateway.watermark is not None
    x = np.random.default_rng(11).random((4000, 64), dtype=np.float32)
    labels = []
    t = project.tokens
    with kit.serving(gateway) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        before = client.get("/admin/watermark/marks", headers=kit.bearer(t["carol"]))
        for chunk in np.array_split(x, 16):
            resp = client.post(
                "/v2/models/digits/infer", json=kit.infer_body(chunk), headers=kit.bearer(t["alice"])
            )
            assert resp.status_code == 200, resp.text
            labels.append(next(o for o in resp.json()["outputs"] if o["name"] == "label")["data"])
        consumer = client.get("/admin/watermark/marks", headers=kit.bearer(t["alice"]))
        anonymous = client.get("/admin/watermark/marks")
        exported = client.get("/admin/watermark/marks", headers=kit.bearer(t["carol"]))
    # Nothing marked yet: 404; only admin/auditor may export the marks.
    assert before.status_code == 404
    assert consumer.status_code == 403 and anonymous.status_code == 401
    assert exported.status_code == 200
    answers = np.concatenate(labels).astype(np.int64)
    marked = gateway.watermark.is_marked(x)
    assert 5 <= marked.sum() <= 40
    assert np.array_equal(answers != digits.adapter.predict(x), marked)
    marks_file = tmp_path / "marks.json"
    marks_file.write_text(exported.text, encoding="utf-8")
    assert len(json.loads(exported.text)["labels"]) == int(marked.sum())

    # The suspects are remote APIs (served by a second gateway); verify queries them with the marks.
    verdicts = {}
    for name, y in (("stolen", answers), ("independent", digits.adapter.predict(x))):
        suspect = kit.make_gateway(project, dataclasses.replace(digits, adapter=_surrogate(x, y)), audit=None)
        with kit.serving(suspect) as srv:
            capsys.readouterr()
            monkeypatch.setenv("SUSPECT_TOKEN", t["dave"])
            code = cli_run(
                ["watermark", "verify", "--url", srv.url, "--model-name", "digits", "--bearer-env",
                 "SUSPECT_TOKEN", "--marks", str(marks_file), "--key-file", str(key_file),
                 "--home", str(tmp_path / "no-home"), "--format", "json"]
            )  # fmt: skip
            verdicts[name] = (code, json.loads(capsys.readouterr().out))
    # The surrogate trained on the gateway's answers carries the marks; one trained on true labels does not.
    assert verdicts["stolen"][0] == 1 and verdicts["stolen"][1]["verdict"] == "owned", verdicts
    assert verdicts["independent"][0] == 0 and verdicts["independent"][1]["verdict"] == "not_detected", (
        verdicts
    )
    # The audit log records the export.
    entries = project.vault.log_entries()
    assert any(e.action == "serve:watermark-export" for e in entries)


def test_enabled_watermark_without_a_key_refuses_to_start(
    project, registry_model: str, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[serve.api_watermark]\nenabled = true\n", encoding="utf-8")
    options = ServeOptions(model_ref=registry_model, home=str(project.home), config_file=str(config))
    approve_gateway(options, passphrase=PASSPHRASE)
    with pytest.raises(ConfigError, match="names no key"):
        build_gateway(options, passphrase=PASSPHRASE)
