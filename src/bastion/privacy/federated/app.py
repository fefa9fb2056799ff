"""The Flower app that ``bastion federate`` runs: one ServerApp and one ClientApp.

The components are referenced from the app's ``pyproject.toml`` (written by :mod:`._runner`) as
``bastion.privacy.federated.app:server_app`` and ``…:client_app``; the Flower processes (``flwr-serverapp``
under the SuperLink, ``flwr-clientapp`` under each SuperNode) import them from the installed package.

* Each ClientApp process loads the built-in dataset and keeps only the partition named by its SuperNode's
  ``--node-config`` (``partition-id``, ``num-partitions``); the rows never leave that process, only model
  updates do.
* The ServerApp runs FedAvg through Flower's ``DefaultWorkflow``; with ``secagg`` the fit stage is
  ``SecAggPlusWorkflow`` (Bell et al. 2020, SecAgg+) and the clients run ``secaggplus_mod``, so the server
  only ever sees the sum of masked updates. With ``dp = "server"`` the strategy is wrapped in
  ``DifferentialPrivacyServerSideFixedClipping``; with ``dp = "client"`` in
  ``DifferentialPrivacyClientSideFixedClipping`` and the clients run ``fixedclipping_mod`` (McMahan et al.
  2018, DP-FedAvg with fixed clipping; every client takes part in every round, so q = 1).
* With DP on (either side) every client's update counts equally: the clients report a weight of 1 and the
  server's :class:`UnweightedFedAvg` ignores whatever ``num_examples`` a client reports. Flower's DP
  strategies calibrate the noise to ``clip / K`` (equal weights); FedAvg's usual weighting by partition size
  would let a large (or lying) client move the average by up to ``clip`` — a sensitivity up to K× larger than
  the one the noise and the reported ε assume. Under SecAgg+ the weights are applied inside the masked sum by
  the clients, so there the equal weighting rests on the clients running this ClientApp (as client-side
  clipping does anyway).
* The server waits for its clients' replies through :class:`PromptGrid`, which asks the SuperLink for them
  every 50-400 ms instead of Flower's fixed 3 s (a round's train and the SecAgg+ stages each wait once).
* After each round the server evaluates the global model on the test split and, at the end, writes the
  per-round accuracy and times plus the final model (safetensors) to the paths in the run config.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Context, FitRes, Message, Parameters, RecordDict, Scalar, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from bastion.files import atomic_write
from bastion.models.data import load_dataset
from bastion.privacy.federated import _model
from bastion.privacy.federated._partition import partition

DP_MODES = ("none", "server", "client")


def secagg_thresholds(num_clients: int) -> tuple[int, int]:
    """(num_shares, reconstruction_threshold) for SecAgg+: every client shares, a majority reconstructs."""
    return num_clients, max(2, num_clients // 2 + 1)


class UnweightedFedAvg(FedAvg):
    """FedAvg whose average gives every client the same weight, whatever ``num_examples`` it reports.

    Used whenever DP is on: the DP noise is calibrated to a sensitivity of ``clip / K``, which only holds when
    no client's (clipped) update carries more than ``1 / K`` of the average.
    """

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[Any, FitRes]],
        failures: list[tuple[Any, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        for _, res in results:
            res.num_examples = 1
        return super().aggregate_fit(server_round, results, failures)


def build_strategy(
    *,
    dp: str,
    num_clients: int,
    noise: float,
    clip: float,
    initial: list[np.ndarray],
    evaluate_fn: Any = None,
) -> Strategy:
    """The server's strategy: FedAvg; unweighted and wrapped in Flower's fixed-clipping DP when DP is on."""
    if dp not in DP_MODES:
        raise ValueError(f"dp must be one of {DP_MODES}")
    base = FedAvg if dp == "none" else UnweightedFedAvg
    strategy: Strategy = base(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=num_clients,
        min_evaluate_clients=num_clients,
        min_available_clients=num_clients,
        evaluate_fn=evaluate_fn,
        on_fit_config_fn=lambda r: {"server_round": r},
        accept_failures=False,
        initial_parameters=ndarrays_to_parameters(initial),
    )
    if dp == "server":
        strategy = DifferentialPrivacyServerSideFixedClipping(strategy, noise, clip, num_clients)
    elif dp == "client":
        strategy = DifferentialPrivacyClientSideFixedClipping(strategy, noise, clip, num_clients)
    return strategy


class _PartitionClient(NumPyClient):
    def __init__(self, x: np.ndarray, y: np.ndarray, run_config: dict[str, Any], partition_id: int) -> None:
        self.x = x
        self.y = y
        # Under DP every update weighs the same (see UnweightedFedAvg); otherwise weight by partition size.
        self.weight = len(y) if str(run_config.get("dp", "none")) == "none" else 1
        self.epochs = int(run_config["local-epochs"])
        self.lr = float(run_config["lr"])
        self.batch_size = int(run_config["batch-size"])
        self.seed = int(run_config["seed"]) * 1000 + partition_id

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        server_round = int(config.get("server_round", 0))
        new = _model.train(
            [np.asarray(p, dtype=np.float32) for p in parameters],
            self.x,
            self.y,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed + server_round,
        )
        return new, self.weight, {}


def load_client_data(
    node_config: dict[str, Any], run_config: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The rows this SuperNode trains on.

    ``data-file`` in the node config names the client's own ``.npz`` (arrays ``x`` and ``y``): the way a real
    participant brings its data. Otherwise the client takes partition ``partition-id`` of the built-in
    dataset and, when ``cache-dir`` is set, keeps it there so later rounds skip the dataset loader.
    """
    data_file = node_config.get("data-file")
    if data_file:
        with np.load(str(data_file), allow_pickle=False) as npz:
            return np.asarray(npz["x"], dtype=np.float32), np.asarray(npz["y"], dtype=np.int64)
    pid = int(node_config["partition-id"])
    n = int(node_config["num-partitions"])
    dataset, seed = str(run_config["dataset"]), int(run_config["seed"])
    cache_dir = node_config.get("cache-dir")
    cache = Path(str(cache_dir)) / f"{dataset}-{seed}-{pid}of{n}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            return npz["x"], npz["y"]
    ds = load_dataset(dataset, seed=seed)
    x, y = partition(ds.x_train, ds.y_train, partition_id=pid, num_partitions=n)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(cache)
    return x, y


def _client_fn(context: Context) -> Any:
    cfg = dict(context.run_config)
    x, y = load_client_data(dict(context.node_config), cfg)
    pid = int(context.node_config.get("partition-id", 0))
    return _PartitionClient(x, y, cfg, pid).to_client()


def _configured_mod(msg: Message, ctxt: Context, call_next: Any) -> Message:
    """Apply SecAgg+ and client-side clipping as the run config asks (mods are fixed at import time)."""
    inner = call_next
    if str(ctxt.run_config.get("dp", "none")) == "client":

        def inner(m: Message, c: Context, _next: Any = call_next) -> Message:
            return fixedclipping_mod(m, c, _next)

    if bool(ctxt.run_config.get("secagg", False)):
        return secaggplus_mod(msg, ctxt, inner)
    return inner(msg, ctxt)


client_app = ClientApp(client_fn=_client_fn, mods=[_configured_mod])
server_app = ServerApp()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


class PromptGrid(Grid):
    """Flower's grid with a shorter wait for replies: ``send_and_receive`` pushes the messages and pulls
    their replies every 50 ms, backing off to 400 ms (Flower's own polls every 3 s, so each of a round's
    exchanges waited up to 3 s after the last client had answered). Everything else is the grid it wraps."""

    def __init__(self, inner: Grid) -> None:
        self._inner = inner

    def set_run(self, run: Any) -> None:
        self._inner.set_run(run)

    @property
    def run(self) -> Any:
        return self._inner.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._inner.get_node_ids()

    def get_nodes(self) -> Iterable[Any]:
        return self._inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._inner.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        waiting = set(self.push_messages(messages))
        end = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        pause = 0.05
        while waiting and (end is None or time.monotonic() < end):
            got = list(self.pull_messages(waiting))
            replies.extend(got)
            waiting.difference_update(m.metadata.reply_to_message_id for m in got)
            if waiting:
                time.sleep(pause if end is None else max(0.0, min(pause, end - time.monotonic())))
                pause = min(pause * 1.5, 0.4)
        return replies


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    grid = PromptGrid(grid)
    cfg = dict(context.run_config)
    num_clients = int(cfg["num-clients"])
    rounds = int(cfg["rounds"])
    dp = str(cfg["dp"])
    ds = load_dataset(str(cfg["dataset"]), seed=int(cfg["seed"]))
    x_test, y_test = ds.x_test, ds.y_test
    history: list[dict[str, float]] = []
    final: list[list[np.ndarray]] = []

    def evaluate_fn(
        server_round: int, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        params = [np.asarray(p, dtype=np.float32) for p in parameters]
        acc = _model.accuracy(params, x_test, y_test)
        loss = _model.loss(params, x_test, y_test)
        history.append({"round": server_round, "accuracy": acc, "loss": loss, "t": time.perf_counter()})
        final[:] = [params]
        return loss, {"accuracy": acc}

    strategy = build_strategy(
        dp=dp,
        num_clients=num_clients,
        noise=float(cfg["dp-noise"]),
        clip=float(cfg["clip"]),
        initial=_model.init_params(ds.n_features, ds.n_classes),
        evaluate_fn=evaluate_fn,
    )
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
    if bool(cfg["secagg"]):
        shares, threshold = secagg_thresholds(num_clients)
        # under DP every client reports weight 1: keep the quantisation at full resolution
        max_weight = 1.0 if dp != "none" else 1000.0
        workflow = DefaultWorkflow(
            fit_workflow=SecAggPlusWorkflow(
                num_shares=shares, reconstruction_threshold=threshold, max_weight=max_weight
            )
        )
    else:
        workflow = DefaultWorkflow()
    workflow(grid, legacy)

    rounds_out = []
    for prev, cur in itertools.pairwise(history):
        rounds_out.append(
            {
                "round": int(cur["round"]),
                "accuracy": cur["accuracy"],
                "loss": cur["loss"],
                "seconds": cur["t"] - prev["t"],
            }
        )
    if final:
        from safetensors.numpy import save

        weight, bias = final[0]
        tensors = {_model.WEIGHT: np.ascontiguousarray(weight), _model.BIAS: np.ascontiguousarray(bias)}
        meta = {"format": "bastion-linear", "dataset": str(cfg["dataset"])}
        prep = ds.preprocessing  # the clients' scaling travels with the model (issue 14 item 10)
        if prep is not None:
            tensors["preprocessing.shift"] = np.asarray(prep.shift, dtype=np.float64)
            tensors["preprocessing.scale"] = np.asarray(prep.scale, dtype=np.float64)
            meta["preprocessing"] = prep.kind
        blob = save(tensors, metadata=meta)
        _write_atomic(Path(str(cfg["model-path"])), blob)
    result = {
        "initial_accuracy": history[0]["accuracy"] if history else None,
        "rounds": rounds_out,
        "completed_rounds": len(rounds_out),
    }
    _write_atomic(Path(str(cfg["results-path"])), json.dumps(result).encode())
