"""Federated learning on Flower's deployment engine: real SuperLink/SuperNode processes over TLS."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("flwr")

from bastion.cli import run
from bastion.errors import InvalidInput, NotFound, ServiceError
from bastion.models.data import load_dataset
from bastion.privacy.federated import (
    FederationConfig,
    ensure_tls,
    federation_epsilon,
    partition,
    partition_digest,
    run_federation,
)
from bastion.privacy.training import ledger_key


def _processes_touching(marker: str) -> list[psutil.Process]:
    """Processes (other than this one) whose command line or environment mentions ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            text = " ".join(proc.info["cmdline"] or [])
            if marker in text or any(marker in v for v in proc.environ().values()):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _assert_no_strays(marker: str) -> None:
    strays = _processes_touching(marker)
    assert not strays, [(p.pid, p.info.get("cmdline")) for p in strays]


def _ledger(tmp_path: Path):
    from bastion.privacy.ledger import PrivacyLedger
    from bastion.store.db import open_engine

    return PrivacyLedger(open_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))


def _init_home(home: Path) -> None:
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    init_project(home=home, passphrase=os.environ["BASTION_PASSPHRASE"], kdf=KdfParams.unsafe_fast()).close()


# --- bad input: refused before any process starts -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": 1}, "between 2"),
        ({"rounds": 0}, "rounds"),
        ({"dp_noise": 1.0}, "both"),
        ({"dp_noise": -1.0, "clip": 1.0}, "dp-noise"),
        ({"dp_noise": 1.0, "clip": 1.0, "secagg": True}, "SecAgg"),
        ({"dp_noise": 1.0, "clip": 1.0, "dp_side": "nowhere"}, "dp-side"),
        ({"clients": 2, "secagg": True}, "at least 3"),
    ],
)
def test_bad_config_is_refused(kwargs, message) -> None:
    base = {"dataset": "digits", "clients": 3, "rounds": 3}
    base.update(kwargs)
    with pytest.raises(InvalidInput, match=message):
        FederationConfig(**base)


def test_unknown_dataset_and_too_few_samples(tmp_path) -> None:
    with pytest.raises(NotFound):
        run_federation(FederationConfig(dataset="mnist", clients=2, rounds=1), tls_dir=tmp_path / "tls")
    # wine has 133 training rows: 10 clients would hold 13 each
    with pytest.raises(InvalidInput, match="too few samples per client"):
        run_federation(FederationConfig(dataset="wine", clients=10, rounds=1), tls_dir=tmp_path / "tls")
    assert not (tmp_path / "tls").exists()  # refused before anything was generated or started


@pytest.mark.parametrize(
    "args",
    [
        ["federate", "--dataset", "digits", "--clients", "1"],
        ["federate", "--dataset", "nope", "--clients", "2"],
        ["federate", "--dataset", "wine", "--clients", "20"],
        ["federate", "--dataset", "digits", "--dp-noise", "1.0"],
    ],
)
def test_cli_bad_input_exits_2(args, tmp_path, capsys) -> None:
    assert run([*args, "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


# --- pieces ----------------------------------------------------------------------------------------------


def test_partitions_are_disjoint_and_cover_the_training_set() -> None:
    ds = load_dataset("digits")
    parts = [partition(ds.x_train, ds.y_train, partition_id=i, num_partitions=3) for i in range(3)]
    assert sum(len(y) for _, y in parts) == ds.n_train
    rows = {tuple(r) for x, _ in parts for r in x.round(6)}
    assert len(rows) == len({tuple(r) for r in ds.x_train.round(6)})
    digests = {partition_digest(x, y) for x, y in parts}
    assert len(digests) == 3
    assert partition_digest(*parts[0]) == partition_digest(*parts[0])
    with pytest.raises(InvalidInput):
        partition(ds.x_train, ds.y_train, partition_id=3, num_partitions=3)


def test_epsilon_matches_the_gaussian_rdp_bound() -> None:
    z, rounds, delta = 1.0, 10, 1e-5
    eps = federation_epsilon(noise_multiplier=z, rounds=rounds, delta=delta)
    # classical RDP → (ε, δ) conversion for `rounds` Gaussian mechanisms, sensitivity 1, no subsampling
    classical = min(
        rounds * a / (2 * z * z) + math.log(1 / delta) / (a - 1) for a in np.linspace(1.01, 200, 20000)
    )
    assert 0 < eps <= classical * 1.001
    assert eps > 0.8 * classical  # the improved conversion shaves only a little
    assert federation_epsilon(noise_multiplier=z, rounds=2 * rounds, delta=delta) > eps
    assert federation_epsilon(noise_multiplier=2 * z, rounds=rounds, delta=delta) < eps


def test_tls_material_is_a_valid_chain(tmp_path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    tls = ensure_tls(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    srv = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    assert srv.issuer == ca.subject
    ca.public_key().verify(srv.signature, srv.tbs_certificate_bytes, ec.ECDSA(srv.signature_hash_algorithm))
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    assert stat.S_IMODE(tls.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    first = tls.server_cert.read_bytes()
    assert ensure_tls(tmp_path / "tls").server_cert.read_bytes() == first  # reused, not reissued
    other = ensure_tls(tmp_path / "tls", hosts=("10.0.0.5", "fl.example"))
    assert other.server_cert.read_bytes() != first  # new hosts: reissued under the same CA
    assert x509.load_pem_x509_certificate(other.server_cert.read_bytes()).issuer == ca.subject


# --- real federations ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_three_clients_three_rounds_digits_over_tls_as_a_subprocess(tmp_path, capsys) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    home = tmp_path / "home"
    _init_home(home)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "federate",
            "--dataset",
            "digits",
            "--clients",
            "3",
            "--rounds",
            "3",
            "--home",
            str(home),
            "--model-out",
            str(tmp_path / "global.safetensors"),
            "--push",
            "fl-digits",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert len(out["accuracy_per_round"]) == 3
    assert out["final_accuracy"] >= 0.85
    assert out["final_accuracy"] > out["initial_accuracy"]
    assert out["tls"] is True and out["epsilon"] is None
    assert len({p["digest"] for p in out["partitions"]}) == 3
    assert (home / "federated" / "tls" / "ca.pem").is_file()
    _assert_no_strays(str(tmp_path))
    # the global model is a plain linear model: encrypted inference can serve it as is
    from bastion.privacy.he import load_he_model

    model = load_he_model(tmp_path / "global.safetensors")
    ds = load_dataset("digits")
    assert float((model.predict(ds.x_test) == ds.y_test).mean()) == pytest.approx(
        out["final_accuracy"], abs=1e-6
    )
    # --push: the registry version has lineage to every client's partition digest, and the run is audited
    from bastion.privacy.federated._push import LINEAGE_JOB
    from bastion.store.lineage import list_events
    from bastion.vault import open_vault

    assert out["model_ref"] == "fl-digits:1" and out["spend_id"] is None  # no DP: nothing charged
    with open_vault(home=home) as vault:
        version = vault.show("fl-digits:1")
        (event,) = list_events(vault.engine, job=LINEAGE_JOB)
        (audited,) = [e for e in vault.audit.entries() if e.action == "privacy:federate"]
    assert version.metadata["federated"]["partition_digests"] == [p["digest"] for p in out["partitions"]]
    assert sorted(d.digest for d in event.inputs) == sorted(
        f"sha256:{p['digest']}" for p in out["partitions"]
    )
    assert event.outputs[0].name == "fl-digits:1"
    assert audited.details["model_ref"] == "fl-digits:1" and audited.outcome == "ok"
    # ... and encrypted inference serves it straight from the registry (verified by the vault)
    data = tmp_path / "digits-test.npz"
    np.savez(data, x=ds.x_test[:64], y=ds.y_test[:64])
    assert (
        run(
            [
                "he",
                "evaluate",
                "--model",
                "fl-digits",
                "--data",
                str(data),
                "--layout",
                "packed",
                "--home",
                str(home),
                "--format",
                "json",
            ]
        )
        == 0
    )
    he_out = json.loads(capsys.readouterr().out)
    assert he_out["agreement"] >= 0.99 and he_out["model"]["ref"] == "fl-digits:1"


def _expected_clipped_fedavg(*, clients: int, clip: float, local_epochs: int) -> list[np.ndarray]:
    """Round 1 of DP-FedAvg without the noise, recomputed here: each client trains from zeros with the
    same seeds, clips its update to ``clip`` (Flower's FlatClip), the server averages (equal partitions)."""
    from bastion.privacy.federated import _model

    ds = load_dataset("digits")
    init = _model.init_params(ds.n_features, ds.n_classes)
    clipped = []
    for pid in range(clients):
        x, y = partition(ds.x_train, ds.y_train, partition_id=pid, num_partitions=clients)
        new = _model.train(init, x, y, epochs=local_epochs, lr=0.5, batch_size=32, seed=pid + 1)
        update = [n - i for n, i in zip(new, init)]
        norm = float(np.sqrt(sum(float((u.astype(np.float64) ** 2).sum()) for u in update)))
        clipped.append([i + u * min(1.0, clip / norm) for i, u in zip(init, update)])
    return [np.mean([c[k] for c in clipped], axis=0) for k in range(2)]


# the README's SecAgg+ example, run here as written (plus where to write the model and JSON output); the
# README walk (tests/test_readme_walk.py, DEDICATED) checks it is still the README's line and skips it
SECAGG_LINE = (
    "federate --dataset digits --clients 3 --rounds 1 --secagg --dp-noise 1.0 --clip 2 --dp-side client"
)


@pytest.mark.slow
def test_secagg_plus_with_client_side_dp_adds_exactly_the_calibrated_noise(
    tmp_path, monkeypatch, capsys
) -> None:
    """SecAgg+ hides each update yet the unmasked sum is exact; DP adds N(0, (zC/K)²) to it, no less."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    from safetensors.numpy import load_file

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    home = tmp_path / "home"
    _init_home(home)
    monkeypatch.setenv("BASTION_HOME", str(home))
    assert run(["privacy", "budget", "set", "digits", "--epsilon", "40"]) == 0  # the README's budget
    capsys.readouterr()
    z, clip, clients = 1.0, 2.0, 3
    model = tmp_path / "m.safetensors"
    assert run([*SECAGG_LINE.split(), "--model-out", str(model), "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["secagg"] is True and res["dp_side"] == "client" and len(res["rounds"]) == 1
    assert res["noise_multiplier"] == z and res["clipping_norm"] == clip
    assert res["epsilon"] == pytest.approx(federation_epsilon(noise_multiplier=z, rounds=1, delta=1e-5))
    assert res["noise_source"]["cryptographic"] is False
    # the same ledger as DP-SGD training: reserved before the run, settled at the ε the run spent
    from bastion.privacy.ledger import ledger_for_vault
    from bastion.vault import open_vault

    key = ledger_key("digits")
    assert res["ledger_dataset"] == key
    with open_vault(home=home) as vault:
        (spend,) = ledger_for_vault(vault).status(key).spends
    assert spend.spend_id == res["spend_id"]
    assert spend.status == "spent" and spend.kind == "train"
    assert spend.epsilon == pytest.approx(res["epsilon"]) and spend.delta == 1e-5
    assert spend.details["unit"] == "client" and spend.details["rounds_completed"] == 1
    _assert_no_strays(str(tmp_path))

    got = load_file(str(model))
    assert got["preprocessing.scale"].tolist() == [16.0] * 64  # digits' scaling travels with the model
    expected = _expected_clipped_fedavg(clients=clients, clip=clip, local_epochs=5)  # the CLI's default
    residual = np.concatenate([(got["weight"] - expected[0]).ravel(), (got["bias"] - expected[1]).ravel()])
    sigma = z * clip / clients
    assert abs(float(residual.mean())) < 0.2 * sigma
    assert 0.8 * sigma < float(residual.std()) < 1.2 * sigma  # noise present, at the calibrated scale


def test_processes_are_stopped_when_the_run_times_out(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    cfg = FederationConfig(dataset="digits", clients=2, rounds=1, dp_noise=1.0, clip=1.0, timeout_s=2.0)
    ledger = _ledger(tmp_path)
    ledger.set_budget(ledger_key("digits"), epsilon=10.0, delta=1e-4)
    with pytest.raises(ServiceError):
        run_federation(cfg, tls_dir=tmp_path / "tls", ledger=ledger)
    _assert_no_strays(str(tmp_path))
    # a run that failed after its reservation stays charged at its plan (fail closed)
    (spend,) = ledger.status(ledger_key("digits")).spends
    planned = federation_epsilon(noise_multiplier=1.0, rounds=1, delta=1e-5)
    assert spend.status == "spent" and spend.details["failed"] is True
    assert spend.epsilon == pytest.approx(planned)


def test_global_model_push_records_lineage_to_each_client_partition(tmp_path) -> None:
    """The push path without a federation: a real model file and partition digests, a real vault."""
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    from bastion.crypto.kdf import KdfParams
    from bastion.privacy.federated import ClientPartition, FederationResult, RoundResult
    from bastion.privacy.federated._push import LINEAGE_JOB, push_global_model
    from bastion.store.lineage import list_events
    from bastion.vault import init_project

    model = tmp_path / "global.safetensors"
    save_file(
        {"weight": np.zeros((10, 64), np.float32), "bias": np.zeros(10, np.float32)},
        str(model),
        metadata={"format": "bastion-linear"},
    )
    ds = load_dataset("digits")
    parts = []
    for pid in range(3):
        x, y = partition(ds.x_train, ds.y_train, partition_id=pid, num_partitions=3)
        parts.append(ClientPartition(pid, len(y), partition_digest(x, y)))
    result = FederationResult(
        dataset="digits",
        clients=3,
        rounds=(RoundResult(1, 0.9, 0.3, 1.0),),
        initial_accuracy=0.1,
        final_accuracy=0.9,
        secagg=False,
        dp_side=None,
        noise_multiplier=None,
        clipping_norm=None,
        epsilon=None,
        delta=None,
        partitions=tuple(parts),
        model_path=model,
        tls=True,
        wall_seconds=1.0,
    )

    def no_pickles(path: Path) -> None:
        assert not list(Path(path).rglob("*.pkl")) if Path(path).is_dir() else Path(path).suffix != ".pkl"

    vault = init_project(
        home=tmp_path / "home",
        passphrase="pw for tests",
        kdf=KdfParams.unsafe_fast(),
        inspectors=[no_pickles],
    )
    try:
        ref = push_global_model(result=result, name="fl-digits", vault=vault)
        version = vault.show(ref)
        assert version.metadata["federated"]["partition_digests"] == [p.digest for p in parts]
        assert version.metadata["federated"]["noise_source"] is None  # no DP, no ε, nothing to qualify
        # issue 12 item 30: a DP result states Flower's non-cryptographic noise next to its ε
        from dataclasses import replace

        dp_doc = replace(result, epsilon=3.0, delta=1e-5, noise_multiplier=1.0, clipping_norm=1.0).to_dict()
        assert dp_doc["noise_source"]["cryptographic"] is False and "NumPy" in dp_doc["noise_source"]["note"]
        events = list_events(vault.engine, job=LINEAGE_JOB)
        assert len(events) == 1
        assert sorted(d.digest for d in events[0].inputs) == sorted(f"sha256:{p.digest}" for p in parts)
        assert events[0].outputs[0].name == ref
    finally:
        vault.close()


def test_client_data_comes_from_its_own_file_or_its_partition(tmp_path) -> None:
    from bastion.privacy.federated.app import load_client_data

    own = tmp_path / "mine.npz"
    np.savez(own, x=np.ones((25, 64)), y=np.arange(25) % 10)
    x, y = load_client_data({"data-file": str(own)}, {"dataset": "digits", "seed": 0})
    assert x.shape == (25, 64) and y.dtype == np.int64
    node = {"partition-id": 1, "num-partitions": 3, "cache-dir": str(tmp_path / "cache")}
    x1, y1 = load_client_data(node, {"dataset": "digits", "seed": 0})
    ds = load_dataset("digits")
    ex, ey = partition(ds.x_train, ds.y_train, partition_id=1, num_partitions=3)
    assert np.array_equal(x1, ex) and np.array_equal(y1, ey)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    x2, _ = load_client_data(node, {"dataset": "digits", "seed": 0})  # served from the node's cache
    assert np.array_equal(x2, ex)


@pytest.mark.slow
def test_sigterm_to_the_cli_stops_every_flower_process(tmp_path) -> None:
    import signal
    import time

    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from bastion.cli import main; main()",
            "federate",
            "--dataset",
            "digits",
            "--clients",
            "2",
            "--rounds",
            "50",
            "--home",
            str(tmp_path / "home"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                cmds = [" ".join(k.cmdline()) for k in psutil.Process(proc.pid).children(recursive=True)]
            except psutil.Error:
                cmds = []
            if sum("flower-supernode" in c for c in cmds) == 2:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the federation did not start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_no_strays(str(tmp_path))
