"""How a built-in dataset is split between the clients of a federation.

Client ``i`` of ``n`` holds the training rows ``i, i + n, i + 2n, …`` (the datasets are shuffled and
stratified by :func:`bastion.models.data.load_dataset`, so every partition sees every class). Each SuperNode
process loads the dataset and keeps only its own rows; the server process keeps only the test split.
"""

from __future__ import annotations

import hashlib

import numpy as np

from bastion.errors import InvalidInput

MIN_SAMPLES_PER_CLIENT = 20


def partition(
    x: np.ndarray, y: np.ndarray, *, partition_id: int, num_partitions: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of client ``partition_id`` out of ``num_partitions``."""
    if num_partitions < 1 or not 0 <= partition_id < num_partitions:
        raise InvalidInput(f"partition {partition_id} out of range for {num_partitions} partitions")
    return x[partition_id::num_partitions], y[partition_id::num_partitions]


def partition_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 over one partition's arrays: what the lineage records for each client's data."""
    h = hashlib.sha256()
    for arr in (x, y):
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def check_partition_sizes(
    n_train: int, num_partitions: int, *, minimum: int = MIN_SAMPLES_PER_CLIENT
) -> None:
    """Raise InvalidInput when the smallest partition would hold fewer than ``minimum`` rows."""
    smallest = n_train // num_partitions
    if smallest < minimum:
        raise InvalidInput(
            f"too few samples per client: {n_train} training rows over {num_partitions} clients gives "
            f"{smallest} per client, at least {minimum} needed",
            hint="use fewer clients or a larger dataset",
        )
