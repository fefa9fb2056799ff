"""Fixtures for the gateway tests: a real project home with identities, a trained digits MLP, and real uvicorn
servers on 127.0.0.1 with ephemeral ports (in a thread or as a ``bastion serve`` subprocess)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._support.server_thread import ServerThread as _ServerThread

from bastion.serve import Authenticator, Gateway, GatewayConfig, ServedModel, create_app

PASSPHRASE = "serve tests passphrase"


@dataclass
class Project:
    home: Path
    vault: Any
    tokens: dict[str, str]


@dataclass
class Digits:
    module: Any
    adapter: Any
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    directory: Path


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path_factory.mktemp("serve-home") / "home"
    # fast KDF: every approval and every ``bastion serve`` process opens this key ring (the KDF is not under
    # test here; tests/crypto covers it)
    vault = init_project(home=home, passphrase=PASSPHRASE, kdf=KdfParams.unsafe_fast())
    tokens = {}
    for name, role, models in [
        ("alice", "consumer", ["digits"]),
        ("bob", "consumer", ["other-model"]),
        ("carol", "auditor", []),
        ("dave", "admin", []),
        ("erin", "data-scientist", []),
    ]:
        _, token = vault.create_token(name=name, role=role, models=models)
        tokens[name] = token
    yield Project(home=home, vault=vault, tokens=tokens)
    vault.close()


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    import torch

    from bastion.models import TorchAdapter
    from bastion.models.recipes import MlpConfig, build_mlp, load_dataset, save_model, train_model

    torch.set_num_threads(1)
    data = load_dataset("digits")
    module = build_mlp(n_features=64, n_classes=10, hidden=(32,), seed=0)
    train_model(model=module, dataset=data, epochs=8, batch_size=64, lr=0.1, seed=0)
    directory = tmp_path_factory.mktemp("digits-model") / "digits"
    save_model(module, directory, config=MlpConfig(n_features=64, n_classes=10, hidden=(32,)))
    adapter = TorchAdapter(module, input_shape=(64,), n_classes=10, clip_values=(0.0, 1.0))
    return Digits(
        module=module,
        adapter=adapter,
        x_train=np.asarray(data.x_train, dtype=np.float32),
        x_test=np.asarray(data.x_test, dtype=np.float32),
        y_test=np.asarray(data.y_test),
        directory=directory,
    )


def make_gateway(
    project: Project, digits: Digits, config: GatewayConfig | None = None, **kwargs: Any
) -> Gateway:
    model = ServedModel(name="digits", version="1", adapter=digits.adapter, digest="sha256:test", env="dev")
    from bastion.serve.server import token_verifier

    auth = Authenticator(verify_token=token_verifier(project.vault), jwt_verifier=kwargs.pop("jwt", None))
    return Gateway(
        model=model,
        config=config or GatewayConfig(),
        authenticator=auth,
        audit=kwargs.pop("audit", project.vault.audit),
        **kwargs,
    )


class ServerThread(_ServerThread):
    """The shared thread with the gateway's uvicorn options (connection limits via a tracker, lifespan on)."""

    def __init__(self, app: Any, *, ssl: tuple[str, str] | None = None, connections: Any = None) -> None:
        from bastion.serve.config import ConnectionsConfig
        from bastion.serve.connections import ConnectionTracker, uvicorn_options

        conn = connections or ConnectionsConfig()
        self.tracker = ConnectionTracker(max_per_address=conn.max_per_address, max_total=conn.max_total)
        super().__init__(app, ssl=ssl, lifespan="on", **uvicorn_options(conn, self.tracker))


@contextlib.contextmanager
def serving(gateway: Gateway, *, ssl: tuple[str, str] | None = None) -> Iterator[ServerThread]:
    with ServerThread(create_app(gateway), ssl=ssl, connections=gateway.config.connections) as server:
        yield server


def infer_body(x: np.ndarray, *, outputs: list[str] | None = None) -> dict[str, Any]:
    x = np.atleast_2d(x)
    body: dict[str, Any] = {
        "inputs": [
            {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
        ]
    }
    if outputs:
        body["outputs"] = [{"name": n} for n in outputs]
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def infer_outputs(client: Any, x: np.ndarray, token: str) -> dict[str, Any]:
    """POST ``x`` to the digits model as ``token`` (must answer 200); its outputs by name."""
    r = client.post("/v2/models/digits/infer", json=infer_body(x), headers=bearer(token))
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


def digits_defence(digits: Digits, key: Any, *, predict: bool = False) -> Any:
    """The digits deployment's theft defence under ``key`` (reference: its training rows, as labelled); with
    ``predict`` it is given the model, as the gateway does (the informative-step tests)."""
    from bastion.serve.theft import build_defence

    return build_defence(
        key=key,
        reference_x=digits.x_train,
        reference_y=digits.adapter.predict(digits.x_train),
        n_classes=10,
        center=0.5,
        predict=digits.adapter.predict_proba if predict else None,
    )


def send_until_flag(guard: Any, model: Any, x: np.ndarray, who: str, batch: int = 10) -> int | None:
    """``x`` to the theft defence ``guard`` as consumer ``who`` in requests of ``batch`` rows: the rows sent
    when it is first flagged (None: never)."""
    for start in range(0, len(x), batch):
        part = np.asarray(x[start : start + batch], dtype=np.float32)
        ans = guard.respond(consumers=(who, "addr:" + who), x=part, proba=model.predict_proba(part))
        if ans.flagged:
            return start + len(part)
    return None


def send_accounts(
    guard: Any, model: Any, batches: list[np.ndarray], *, tag: str, batch: int, net: str
) -> tuple[int | None, int]:
    """Each of ``batches`` from a fresh account (``jwt:{tag}{i}``) at its own address in ``net`` (e.g.
    ``198.18``), in requests of ``batch`` rows: the rows sent at the first flag (None: never) and how many
    accounts were answered as flagged (the newcomers' pool tests)."""
    first, flagged, sent = None, 0, 0
    for a, rows in enumerate(batches):
        hit = False
        for start in range(0, len(rows), batch):
            part = np.asarray(rows[start : start + batch], dtype=np.float32)
            ans = guard.respond(
                consumers=(f"jwt:{tag}{a}", f"addr:{net}.{a // 250}.{a % 250}"),
                x=part,
                proba=model.predict_proba(part),
            )
            sent += len(part)
            hit |= ans.flagged
            if ans.flagged and first is None:
                first = sent
        flagged += hit
    return first, flagged


def clinic_stream(
    x: np.ndarray, rng: np.random.Generator, monitored: np.ndarray, *, sigma: float, rows: int
) -> np.ndarray:
    """A clinic's stream over the records ``x``: new patients (30 %) and follow-up visits; a visit re-sends
    the patient's last record with 1-2 of the ``monitored`` fields re-measured (+ N(0, ``sigma``) x the
    field's spread). The round-11 and round-12 clinic tests."""
    sd = x.std(axis=0) + 1e-9
    last: dict[int, np.ndarray] = {}
    out = []
    while len(out) < rows:
        if not last or rng.uniform() < 0.3:
            i = int(rng.integers(len(x)))
            last[i] = x[i].copy()
        else:
            i = int(rng.choice(list(last)))
            r = last[i].copy()
            f = rng.choice(monitored, int(rng.integers(1, 3)), replace=False)
            r[f] += sigma * sd[f] * rng.standard_normal(len(f))
            last[i] = r
        out.append(last[i].copy())
    return np.asarray(out, dtype=np.float32)


def serve_stream(
    model: Any, guard: Any, rows: np.ndarray, consumers: tuple[str, str]
) -> tuple[int | None, int]:
    """Send ``rows`` in batches of 10 through ``guard`` as ``consumers``: the first flag, and how many
    answers' top class differs from the model's (the benign streams' cost)."""
    from bastion.serve.theft import DefendedModel

    served = DefendedModel(model, guard, consumers=consumers)
    lost = 0
    for start in range(0, len(rows), 10):
        p = np.asarray(model.predict_proba(rows[start : start + 10]))
        got = np.asarray(served.predict_proba(rows[start : start + 10]))
        lost += int((got.argmax(1) != p.argmax(1)).sum())
    return served.first_flag, lost


def top_pixels(digits: Digits, x: np.ndarray) -> np.ndarray:
    """The model's pixels by importance on ``x``: the mean pull of a +0.3 step on each (a thief's best guess,
    here exact). The confined-probe tests of rounds 13 and 16."""
    model = digits.adapter
    p0 = np.asarray(model.predict_proba(x))
    pull = []
    for f in range(x.shape[1]):
        moved = x.copy()
        moved[:, f] = np.clip(moved[:, f] + 0.3, 0.0, 1.0)
        pull.append(float(np.abs(np.asarray(model.predict_proba(moved)) - p0).sum(axis=1).mean()))
    return np.argsort(pull)[::-1]


def confined_probes(
    digits: Digits,
    guard: Any,
    rng: np.random.Generator,
    anchors: np.ndarray,
    feats: np.ndarray,
    *,
    per_anchor: int,
    who: str,
    prefix: int,
) -> tuple[int | None, float, float]:
    """Narrow probes on 1-3 of ``feats`` off ``anchors`` (``per_anchor`` each round, inside the small-steps
    band), 2,000 rows sent to ``guard`` as consumer ``who``: the first flag, and the fidelity on the training
    split of a copy from the anchors alone and of one from the first ``prefix`` rows (both answered
    cleanly)."""
    from bastion.adversarial.attacks.extraction import _train_surrogate
    from bastion.serve.theft import DefendedModel

    model = digits.adapter
    width = anchors.shape[1]
    band = 0.5 * (guard._resend_tau + guard._near_tau)
    rows = [*anchors]
    while len(rows) < 2000:
        for a in anchors[rng.permutation(len(anchors))]:
            for _ in range(per_anchor):
                step = np.zeros(width, dtype=np.float32)
                f = rng.choice(feats, int(rng.integers(1, 4)), replace=False)
                step[f] = rng.choice([-1.0, 1.0], len(f)) * rng.uniform(0.5, 1.0, len(f))
                rows.append(np.clip(a + band * rng.uniform(0.6, 1.0) * step / np.linalg.norm(step), 0.0, 1.0))
    xs = np.asarray(rows[:2000], dtype=np.float32)
    served = DefendedModel(model, guard, consumers=(who, "addr:198.51.100.40"))
    for start in range(0, len(xs), 10):
        served.predict_proba(xs[start : start + 10])
    ref = np.asarray(model.predict(digits.x_train))
    fid = []
    for part in (anchors, xs[:prefix]):
        copy = _train_surrogate(
            part,
            np.asarray(model.predict_proba(part)),
            victim=model,
            label_only=False,
            hidden=(128,),
            steps=600,
            seed=103,
            clip=(0.0, 1.0),
        )
        fid.append(float((np.asarray(copy.predict(digits.x_train)) == ref).mean()))
    return served.first_flag, fid[0], fid[1]


@dataclass(frozen=True)
class Kit:
    """The helpers above, handed to tests as a fixture (test modules cannot import conftest)."""

    make_gateway: Any = make_gateway
    serving: Any = serving
    infer_body: Any = infer_body
    bearer: Any = bearer
    server_thread: Any = ServerThread
    digits_defence: Any = digits_defence
    infer_outputs: Any = infer_outputs
    send_until_flag: Any = send_until_flag
    send_accounts: Any = send_accounts
    clinic_stream: Any = clinic_stream
    top_pixels: Any = top_pixels
    serve_stream: Any = serve_stream
    confined_probes: Any = confined_probes


@pytest.fixture(scope="session")
def kit() -> Kit:
    return Kit()


@pytest.fixture(scope="session")
def registry_model(project: Project, digits: Digits) -> str:
    """The digits MLP pushed (scanned, signed, encrypted) into the session's registry as ``digits``, with the
    default gateway configuration approved for its key release."""
    version = project.vault.push(digits.directory, name="digits")
    approve(project.home, version.ref)
    return version.ref


def approve(home: Path, ref: str, *extra: str) -> None:
    """``bastion serve REF --approve`` with the serve options ``extra`` (the ones that change the config)."""
    from bastion.serve.server import ServeOptions, approve_gateway

    opts: dict[str, Any] = {}
    args = list(extra)
    for flag, key in (("--redis", "redis_url"), ("--config", "config_file")):
        if flag in args:
            opts[key] = args[args.index(flag) + 1]
    approve_gateway(ServeOptions(model_ref=ref, home=str(home), **opts), passphrase=PASSPHRASE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``bastion serve`` as a real subprocess on 127.0.0.1 (plain HTTP on loopback via --insecure)."""

    def __init__(self, home: Path, ref: str, *extra: str) -> None:
        import os
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BASTION_PASSPHRASE": PASSPHRASE, "BASTION_HOME": str(home)}
        env.pop("BASTION_TOKEN", None)
        cmd = [sys.executable, "-c", "from bastion.cli import main; main()", "serve", ref]
        cmd += ["--insecure", "--port", str(self.port), "--home", str(home), *extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 90.0) -> ServeProcess:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bastion serve exited {self.proc.returncode}: {self.proc.stderr.read()[-500:]}"
                )  # type: ignore[union-attr]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError("bastion serve did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def serve_process() -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(home: Path, ref: str, *extra: str, approved: bool = False) -> ServeProcess:
        if not approved:
            approve(home, ref, *extra)
        proc = ServeProcess(home, ref, *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
