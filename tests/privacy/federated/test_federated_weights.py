"""Issue 12 item 29: with DP on, FedAvg must not weight clients by the size they report.

Flower's DP strategies add noise calibrated to a sensitivity of ``clip / K`` (equal weights). Weighting by
``num_examples`` lets one client with a large (or a lying) partition move the average by up to ``clip``.
These tests drive the server's real strategy objects (``build_strategy``) and the real ClientApp client.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvg

from bastion.privacy.federated import _model
from bastion.privacy.federated.app import UnweightedFedAvg, _PartitionClient, build_strategy

CLIP = 1.0
DIM = 8


def _aggregate(strategy, updates: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    results = [
        (
            None,
            FitRes(
                status=Status(code=Code.OK, message=""),
                parameters=ndarrays_to_parameters([u.astype(np.float64)]),
                num_examples=n,
                metrics={},
            ),
        )
        for u, n in zip(updates, sizes, strict=True)
    ]
    params, _ = strategy.aggregate_fit(1, results, [])
    assert params is not None
    return parameters_to_ndarrays(params)[0]


def _dp_strategy(dp: str, clients: int):
    strategy = build_strategy(
        dp=dp, num_clients=clients, noise=0.0, clip=CLIP, initial=[np.zeros(DIM, dtype=np.float32)]
    )
    strategy.current_round_params = [np.zeros(DIM)]  # what configure_fit records before a round
    return strategy


@pytest.mark.parametrize("dp", ["server", "client"])
def test_one_client_moves_the_dp_average_by_at_most_clip_over_k(dp: str) -> None:
    rng = np.random.default_rng(0)
    sizes = [1000, 10, 10]  # unequal partitions, or one client lying about its size
    k = len(sizes)
    others = [rng.normal(size=DIM) for _ in range(k - 1)]
    others = [o * min(1.0, CLIP / np.linalg.norm(o)) for o in others]
    unit = np.zeros(DIM)
    unit[0] = CLIP
    marked = _aggregate(_dp_strategy(dp, k), [unit, *others], sizes)
    flipped = _aggregate(_dp_strategy(dp, k), [-unit, *others], sizes)  # replace-one neighbour
    moved = float(np.linalg.norm(marked - flipped))
    assert moved == pytest.approx(2 * CLIP / k, rel=1e-9)  # replace-one sensitivity: 2·clip/K, as calibrated
    # the attack on the weighted average the strategies used to wrap: ~K× the calibrated sensitivity
    weighted = FedAvg()
    moved_weighted = float(
        np.linalg.norm(
            _aggregate(weighted, [unit, *others], sizes) - _aggregate(weighted, [-unit, *others], sizes)
        )
    )
    assert moved_weighted > 2.5 * (2 * CLIP / k)


def test_without_dp_the_average_stays_weighted_and_unweighted_ignores_reported_sizes() -> None:
    updates = [np.full(DIM, 1.0), np.full(DIM, 4.0)]
    plain = build_strategy(dp="none", num_clients=2, noise=0.0, clip=0.0, initial=[np.zeros(DIM)])
    assert not isinstance(plain, UnweightedFedAvg)
    assert _aggregate(plain, updates, [3, 1])[0] == pytest.approx(1.75)  # FedAvg: weighted by size
    assert _aggregate(UnweightedFedAvg(), updates, [3, 1])[0] == pytest.approx(2.5)
    assert _aggregate(UnweightedFedAvg(), updates, [10**9, 1])[0] == pytest.approx(2.5)


@pytest.mark.parametrize(("dp", "expected"), [("none", 37), ("server", 1), ("client", 1)])
def test_clients_report_weight_one_under_dp(dp: str, expected: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    config = {"local-epochs": 1, "lr": 0.1, "batch-size": 8, "seed": 0, "dp": dp}
    client = _PartitionClient(x, y, config, partition_id=0)
    _, weight, _ = client.fit(_model.init_params(4, 2), {"server_round": 1})
    assert weight == expected
