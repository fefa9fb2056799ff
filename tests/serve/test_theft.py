"""The theft defence against its attacks (issue 20), in-process on a digits MLP, plus one end-to-end run
through the real gateway on 127.0.0.1.

The fast tests assert the goals on a subset (random, bucket-shaped and Jacobian attacks at 2,000 rows, 20
benign streams); the full matrix (every attack, both datasets, 100 benign streams of 2,000 rows) is marked
slow and is what ``benchmarks/bench_extraction.py`` prints.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import numpy as np
import pytest

from bastion.adversarial.attacks.extraction import extract
from bastion.errors import BudgetExhausted
from bastion.serve.config import GatewayConfig, MonitorConfig
from bastion.serve.monitor import ExtractionMonitor
from bastion.serve.responses import misinform, poison, truncate
from bastion.serve.theft import DefendedModel, TheftDefence, TheftPolicy
from bastion.watermark.api import ConsumerWatermark

SECRET = b"test-deployment-secret-of-32-byt"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def make_defence(digits: Any, *, secret: bytes = SECRET, **kw: Any) -> TheftDefence:
    wm = ConsumerWatermark(secret, n_features=64, n_classes=10, scale=_scale(digits.x_train), cycles=0.5)
    return TheftDefence(
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
        secret=secret,
        watermark=wm,
        center=0.5,
        **kw,
    )


def _scale(x: np.ndarray) -> float:
    rng = np.random.default_rng(1)
    dirs = rng.standard_normal((32, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return float((x @ dirs.T).std(axis=0).mean())


def steal(
    digits: Any, strategy: str, served: Any, budgets: tuple[int, ...] = (2000,), train_steps: int = 400
) -> Any:
    return extract(
        victim=served,
        strategy=strategy,
        budgets=budgets,
        data=digits.x_test,
        eval_x=digits.x_train[:600],
        clip_values=(0.0, 1.0),
        jacobian_seed_size=100,
        reference=digits.adapter,
        train_steps=train_steps,
        seed=3,
    )


def test_monitor_parameters_are_keyed_not_in_the_code() -> None:
    cfg = MonitorConfig()
    a = ExtractionMonitor(config=cfg, n_features=64, key=b"a" * 32)
    b = ExtractionMonitor(config=cfg, n_features=64, key=b"b" * 32)
    again = ExtractionMonitor(config=cfg, n_features=64, key=b"a" * 32)
    unkeyed = ExtractionMonitor(config=cfg, n_features=64)
    public = np.random.default_rng(0).standard_normal((64, cfg.coverage_bits)).astype(np.float32)
    assert np.array_equal(a._planes, again._planes)
    for other in (b, unkeyed):
        assert not np.array_equal(a._planes, other._planes)
    assert not np.array_equal(unkeyed._planes, public)


def test_misinformation_relabels_each_row_and_poisoning_never_changes_the_label() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10) * 0.3, 500)
    digest = rng.integers(0, 2**62, 500)
    # a keyed decoy's label per cell, whatever the model says (tests/serve/test_theft_r6_a.py)
    mis = misinform(p, secret=SECRET, cells=digest)
    assert 0.8 <= float((mis.argmax(1) != p.argmax(1)).mean()) < 0.97
    assert not np.array_equal(mis, misinform(p, secret=b"another-secret-of-32-bytes-long!", cells=digest))
    q = poison(p, secret=SECRET, consumer="c", eps=0.3, x_digest=digest)
    assert np.array_equal(q.argmax(1), p.argmax(1))
    assert np.abs(q - p).sum(1).mean() > 0.05  # it does move the probabilities
    assert np.array_equal(q, poison(p, secret=SECRET, consumer="c", eps=0.3, x_digest=digest))
    t = truncate(p, top_k=3, decimals=2)
    rows = np.arange(len(p))
    assert ((t > 0).sum(1) <= 3).all() and np.all(t[rows, p.argmax(1)] == t.max(1))


@pytest.mark.parametrize("strategy", ["random", pytest.param("jacobian", marks=pytest.mark.slow)])
def test_synthetic_theft_is_flagged_within_300_rows_and_the_copy_is_poor(digits: Any, strategy: str) -> None:
    plain = steal(digits, strategy, digits.adapter)
    served = DefendedModel(digits.adapter, make_defence(digits), consumers=("mallory",))
    defended = steal(digits, strategy, served)
    assert served.first_flag is not None and served.first_flag <= 300
    assert defended.points[-1].fidelity <= 0.70 < plain.points[-1].fidelity


def test_benign_streams_are_not_flagged_and_lose_no_accuracy(digits: Any) -> None:
    clock = Clock()
    guard = make_defence(digits, clock=clock)
    rng = np.random.default_rng(5)
    plain = defended = total = 0
    for s in range(20):
        kind = s % 4
        if kind == 0:  # one class only
            idx = np.flatnonzero(digits.y_test == s % 10)
            order = idx[rng.integers(0, len(idx), 500)]
        elif kind == 1:  # each input three times
            order = np.repeat(rng.integers(0, len(digits.x_test), 170), 3)[:500]
        else:
            order = rng.integers(0, len(digits.x_test), 500)
        batch = 100 if kind == 3 else 10  # batch job
        for start in range(0, 500, batch):
            if kind == 2 and start == 250:
                clock.t += 8 * 3600  # a burst after idle
            xs, ys = digits.x_test[order[start : start + batch]], digits.y_test[order[start : start + batch]]
            p = digits.adapter.predict_proba(xs)
            ans = guard.respond(consumers=(f"user-{s}", f"addr:10.0.0.{s}"), x=xs, proba=p)
            assert not ans.flagged, (s, start, ans.reason)
            plain += int((p.argmax(1) == ys).sum())
            defended += int((ans.proba.argmax(1) == ys).sum())
            total += len(xs)
    assert guard.flags() == []
    assert (plain - defended) / total <= 0.01


def test_flags_decay_carry_evidence_and_join_tokens_of_one_address(digits: Any) -> None:
    clock = Clock()
    guard = make_defence(digits, clock=clock, policy=TheftPolicy(flag_ttl_s=600.0))
    rng = np.random.default_rng(1)
    for i in range(10):  # two tokens of one identity, one address: the address is flagged
        x = rng.random((20, 64), dtype=np.float32)
        guard.respond(
            consumers=(f"token-{i % 2}", "addr:192.0.2.9"), x=x, proba=digits.adapter.predict_proba(x)
        )
    flags = {f["consumer"]: f for f in guard.flags()}
    assert "addr:192.0.2.9" in flags
    evidence = flags["addr:192.0.2.9"]["evidence"]
    assert evidence["mean_percentile"] > 0.9 and evidence["distinct_rows"] >= 100
    natural = digits.x_test[:20]
    assert guard.respond(
        consumers=("token-new", "addr:192.0.2.9"), x=natural, proba=digits.adapter.predict_proba(natural)
    ).flagged
    clock.t += 601
    assert guard.flags() == []  # decayed


def test_daily_row_budget_bounds_every_consumer(digits: Any) -> None:
    clock = Clock()
    guard = make_defence(digits, clock=clock, policy=TheftPolicy(daily_rows=300))
    x = digits.x_test[:100]
    p = digits.adapter.predict_proba(x)
    for _ in range(3):
        guard.respond(consumers=("eve",), x=x, proba=p)
    with pytest.raises(BudgetExhausted):
        guard.respond(consumers=("eve",), x=x[:1], proba=p[:1])
    clock.t += 86400
    guard.respond(consumers=("eve",), x=x, proba=p)


def test_natural_data_theft_is_attributable_to_the_consumer(digits: Any) -> None:
    guard = make_defence(digits)
    served = DefendedModel(digits.adapter, guard, consumers=("mallory",))
    stolen = steal(digits, "knockoff", served, train_steps=600)  # extract()'s default training
    innocent = steal(digits, "knockoff", digits.adapter, train_steps=600)
    rng = np.random.default_rng(4)
    customers = [f"customer-{i}" for i in range(9)]
    for c in customers:  # honest customers of the same deployment
        xs = digits.x_test[rng.integers(0, len(digits.x_test), 300)]
        guard.respond(consumers=(c,), x=xs, proba=digits.adapter.predict_proba(xs))
    candidates = ["mallory", *customers]
    probes = {c: guard.queries(c) for c in candidates}
    wm = guard.watermark
    found = wm.attribute(
        predict_proba=stolen.surrogate.predict_proba,
        probes=probes,
        consumers=candidates,
        reference=digits.adapter.predict_proba,
    )
    assert found.consumer == "mallory" and found.p_value < 1e-6
    clean = wm.attribute(
        predict_proba=innocent.surrogate.predict_proba,
        probes=probes,
        consumers=candidates,
        reference=digits.adapter.predict_proba,
    )
    assert clean.p_value > 1e-3


def test_gateway_end_to_end_flags_misinforms_and_lists_evidence(project: Any, digits: Any, kit: Any) -> None:
    guard = make_defence(digits)
    gw = kit.make_gateway(project, digits, theft=guard)
    rng = np.random.default_rng(9)
    alice = kit.bearer(project.tokens["alice"])
    with kit.serving(gw) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        natural = digits.x_test[:20]
        r = client.post("/v2/models/digits/infer", json=kit.infer_body(natural), headers=alice)
        assert r.status_code == 200
        labels = np.asarray(next(o for o in r.json()["outputs"] if o["name"] == "label")["data"])
        assert np.array_equal(labels, digits.adapter.predict(natural))
        changed = []
        for _ in range(5):
            x = rng.random((20, 64), dtype=np.float32)
            r = client.post("/v2/models/digits/infer", json=kit.infer_body(x), headers=alice)
            assert r.status_code == 200
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            top = np.asarray(outputs["top_k_labels"]["data"]).reshape(len(x), -1)
            ranked = np.argsort(-digits.adapter.predict_proba(x), axis=1)[:, : top.shape[1]]
            changed.append(np.any(top != ranked, axis=1))
        # Far out of distribution: misinformation. Thresholds carry keyed jitter, so a row near the hard-OOD
        # cut may be answered truthfully; nearly all must be misinformed. A misinformed answer ranks the
        # classes as the keyed decoy does (its label is the model's 1 time in 10, its top-k almost never).
        assert np.concatenate(changed).mean() >= 0.95
        flags = client.get("/admin/theft", headers=kit.bearer(project.tokens["dave"])).json()
        assert flags["enabled"] and flags["flags"][0]["evidence"]["mean_percentile"] > 0.9
        assert client.get("/admin/theft", headers=alice).status_code == 403


@functools.lru_cache(maxsize=2)
def _victim(name: str) -> tuple[Any, Any]:
    """The benchmark's victim: a 64-unit MLP on the built-in training split of ``name``."""
    import torch

    from bastion.adversarial.attacks.membership import mlp_shadow_trainer
    from bastion.models.data import load_dataset

    torch.set_num_threads(1)
    d = load_dataset(name, seed=0)
    nf = d.x_train.shape[1]
    clip = (0.0, 1.0) if name == "digits" else None
    trainer = mlp_shadow_trainer(
        input_shape=(nf,),
        n_classes=d.n_classes,
        hidden=(64,),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        clip_values=clip,
    )
    return d, trainer(d.x_train, d.y_train, 0)


def _guard(name: str, clock: Any = None) -> TheftDefence:
    from bastion.serve.theft import build_defence
    from bastion.watermark.keys import WatermarkKey

    d, _ = _victim(name)
    return build_defence(
        key=WatermarkKey.from_secret(SECRET),
        reference_x=d.x_train,
        reference_y=d.y_train,
        n_classes=d.n_classes,
        center=0.5 if name == "digits" else 0.0,
        **({"clock": clock} if clock is not None else {}),
    )


def _steal_full(name: str, strategy: str, served: Any) -> Any:
    d, victim = _victim(name)
    clip = (0.0, 1.0) if name == "digits" else (float(d.x_train.min()), float(d.x_train.max()))
    return extract(
        victim=served,
        strategy=strategy,
        budgets=(2000,),
        data=d.x_test,
        eval_x=d.x_train,
        clip_values=clip,
        jacobian_seed_size=10 * d.n_classes,
        reference=victim,
        seed=3,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
@pytest.mark.parametrize("strategy", ["random", "bucket", "jacobian", "jacobian-random", "mixup", "adaptive"])
def test_full_synthetic_goal(name: str, strategy: str) -> None:
    """The issue's goal: flagged within 300 rows, best surrogate fidelity at 2,000 rows <= 0.70."""
    _, victim = _victim(name)
    served = DefendedModel(victim, _guard(name), consumers=("mallory", "addr:192.0.2.7"))
    res = _steal_full(name, strategy, served)
    assert served.first_flag is not None and served.first_flag <= 300
    assert res.points[-1].fidelity <= 0.70


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_full_natural_theft_is_attributable(name: str) -> None:
    d, victim = _victim(name)
    guard = _guard(name)
    served = DefendedModel(victim, guard, consumers=("mallory",))
    res = _steal_full(name, "knockoff", served)
    rng = np.random.default_rng(11)
    customers = [f"customer-{i}" for i in range(19)]
    for c in customers:
        xs = d.x_test[rng.integers(0, len(d.x_test), 400)]
        guard.respond(consumers=(c,), x=xs, proba=victim.predict_proba(xs))
    candidates = ["mallory", *customers]
    found = guard.watermark.attribute(
        predict_proba=res.surrogate.predict_proba,
        probes={c: guard.queries(c) for c in candidates},
        consumers=candidates,
        reference=victim.predict_proba,
    )
    assert found.consumer == "mallory" and found.p_value < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_full_benign_streams(name: str) -> None:
    """100 benign streams of 2,000 rows (mixed, each input 3 times, one class, bursts after idle, batch jobs):
    no flag, no accuracy lost."""
    d, victim = _victim(name)
    clock = Clock()
    guard = _guard(name, clock)
    rng = np.random.default_rng(7)
    plain = defended = total = 0
    for s in range(100):
        kind = s % 5
        if kind == 0:
            order = rng.integers(0, len(d.x_test), 2000)
        elif kind == 1:
            order = np.repeat(rng.integers(0, len(d.x_test), 667), 3)[:2000]
        elif kind == 2:
            idx = np.flatnonzero(d.y_test == int(rng.integers(0, d.n_classes)))
            order = idx[rng.integers(0, len(idx), 2000)]
        else:
            order = rng.integers(0, len(d.x_test), 2000)
        batch = 100 if kind == 4 else 10
        for start in range(0, 2000, batch):
            if kind == 3 and start and start % 500 == 0:
                clock.t += 6 * 3600.0
            xs, ys = d.x_test[order[start : start + batch]], d.y_test[order[start : start + batch]]
            p = victim.predict_proba(xs)
            ans = guard.respond(consumers=(f"benign-{s}", f"addr:10.0.{s}.1"), x=xs, proba=p)
            assert not ans.flagged, (s, start, ans.reason)
            plain += int((p.argmax(1) == ys).sum())
            defended += int((ans.proba.argmax(1) == ys).sum())
            total += len(xs)
        clock.t += 60.0
    assert (plain - defended) / total <= 0.01


@pytest.mark.slow
def test_verify_url_names_the_consumer_whose_answers_trained_the_copy(
    project: Any, digits: Any, kit: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real gateway: mallory steals with natural data over HTTP, the owner exports the evidence
    from /admin/theft/evidence, and ``bastion watermark verify --url --consumers`` against the thief's own
    endpoint names mallory (exit 1); an innocent copy is not attributed (exit 0)."""
    import json
    from types import SimpleNamespace

    from bastion.adversarial.attacks.membership import train_mlp
    from bastion.cli import run
    from bastion.models import TorchAdapter
    from bastion.watermark.keys import WatermarkKey, write_key_file

    key = WatermarkKey.from_secret(b"verify-url-test-key-32-bytes-abc")  # deterministic test
    key_file = write_key_file(key, tmp_path / "wm.key")
    guard = kit.digits_defence(digits, key)
    gw = kit.make_gateway(project, digits, theft=guard)
    rng = np.random.default_rng(2)
    # natural rows: the test split and as many training rows (the score test's z grows with the probes; with
    # the test split alone it sat near the p < 1e-6 line and varied between runs: z 4.7-6.1)
    pool = np.concatenate([digits.x_test, digits.x_train[: len(digits.x_test)]])
    queries = pool[rng.permutation(len(pool))]
    answers = []
    with kit.serving(gw) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, len(queries), 50):  # mallory (alice's token) and one honest customer
            part = queries[start : start + 50]
            out = kit.infer_outputs(client, part, project.tokens["alice"])
            labels = np.asarray(out["top_k_labels"]["data"]).reshape(len(part), -1)
            probs = np.asarray(out["top_k_probabilities"]["data"]).reshape(len(part), -1)
            soft = np.zeros((len(part), 10))
            np.put_along_axis(soft, labels, probs, axis=1)
            answers.append(soft / soft.sum(1, keepdims=True))
        honest = digits.x_test[rng.integers(0, len(digits.x_test), 200)]
        r = client.post(
            "/v2/models/digits/infer", json=kit.infer_body(honest), headers=kit.bearer(project.tokens["dave"])
        )
        assert r.status_code == 200
        assert (
            client.get("/admin/theft/evidence", headers=kit.bearer(project.tokens["carol"])).status_code
            == 403
        )
        r = client.get("/admin/theft/evidence", headers=kit.bearer(project.tokens["dave"]))
        assert r.status_code == 200
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps(r.json()))
    soft = np.concatenate(answers)
    copies = {}
    for label, targets in (("stolen", soft), ("innocent", None)):
        module = train_mlp(
            queries,
            soft.argmax(1),
            n_classes=10,
            hidden=(128,),
            epochs=80,
            batch_size=64,
            lr=3e-3,
            seed=1,
            soft_targets=targets,
            input_shape=(64,),
        )
        copies[label] = TorchAdapter(module, input_shape=(64,), n_classes=10)
    monkeypatch.setenv("THIEF_TOKEN", project.tokens["dave"])
    for label, expected in (("stolen", 1), ("innocent", 0)):
        plain = GatewayConfig(monitor=MonitorConfig(enabled=False))  # the thief's own endpoint
        thief = kit.make_gateway(project, SimpleNamespace(adapter=copies[label]), plain)
        with kit.serving(thief) as server:
            out = tmp_path / f"{label}.json"
            code = run(
                [
                    "watermark",
                    "verify",
                    "--url",
                    server.url,
                    "--model-name",
                    "digits",
                    "--bearer-env",
                    "THIEF_TOKEN",
                    "--consumers",
                    str(evidence),
                    "--key-file",
                    str(key_file),
                    "--format",
                    "json",
                ]
            )
        assert code == expected, label


def test_serve_theft_config_builds_a_keyed_defence_and_fails_closed(digits: Any, tmp_path: Any) -> None:
    from bastion.errors import ConfigError
    from bastion.serve.app import ServedModel
    from bastion.serve.config import config_from_mapping
    from bastion.serve.server import theft_defence
    from bastion.watermark.keys import WatermarkKey, write_key_file

    with pytest.raises(ConfigError, match="needs a key"):
        config_from_mapping({"theft": {"enabled": True}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_mapping({"theft": {"enabled": True, "sample": 3}})
    key = WatermarkKey.from_secret(SECRET)
    key_file = write_key_file(key, tmp_path / "k.key")
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=digits.x_train, y=digits.adapter.predict(digits.x_train))
    cfg = config_from_mapping(
        {"theft": {"enabled": True, "key": str(key_file), "reference": str(ref), "daily_rows": 500}}
    )
    model = ServedModel(name="digits", version="1", adapter=digits.adapter, digest="sha256:x")
    guard, monitor_key = theft_defence(vault=None, config=cfg, model=model)
    assert isinstance(guard, TheftDefence) and guard.policy.daily_rows == 500
    assert monitor_key == key.derive("bastion-monitor-v1")
    twin, _ = theft_defence(vault=None, config=cfg, model=model)
    assert np.array_equal(
        guard.monitor._planes, twin.monitor._planes
    )  # replicas agree: same key, same secret
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    bad = config_from_mapping(
        {"theft": {"enabled": True, "key": str(key_file), "reference": str(tmp_path / "bad.npz")}}
    )
    with pytest.raises(ConfigError, match="npz"):
        theft_defence(vault=None, config=bad, model=model)


@pytest.mark.redis
def test_replicas_sharing_redis_draw_the_same_secret_hyperplanes(redis_url: str) -> None:
    import uuid

    from bastion.serve.monitor import RedisMonitorStore

    cfg = MonitorConfig()
    prefix = f"test-planes-{uuid.uuid4().hex}"
    stores = [RedisMonitorStore(config=cfg, n_features=64, url=redis_url, prefix=prefix) for _ in range(2)]
    secrets = [s.shared_secret() for s in stores]
    assert secrets[0] == secrets[1] and len(secrets[0]) == 32
    a, b = (
        ExtractionMonitor(config=cfg, n_features=64, store=s, key=k)
        for s, k in zip(stores, secrets, strict=True)
    )
    assert np.array_equal(a._planes, b._planes)
    other = RedisMonitorStore(
        config=cfg, n_features=64, url=redis_url, prefix=prefix + "-other"
    ).shared_secret()
    assert other != secrets[0]
